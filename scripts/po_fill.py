"""Fill empty msgstr entries of locale/zh_Hans/LC_MESSAGES/django.po from locale/zh_Hans.tsv, then compile.

The TSV (msgid<TAB>msgstr, one per line) is the glossary of Chinese UI texts; `make messages` runs this after
makemessages, so a new English msgid only needs one TSV line.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
TSV = ROOT / "locale" / "zh_Hans.tsv"


def unquote(lines: list[str]) -> str:
    return (
        "".join(re.match(r'^"(.*)"$', line.strip()).group(1) for line in lines)
        .encode()
        .decode("unicode_escape")
        .encode("latin-1")
        .decode()
    )


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def main() -> int:
    glossary = {}
    for line in TSV.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            msgid, _, msgstr = line.partition("\t")
            glossary[msgid] = msgstr
    out, missing = [], []
    lines = PO.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("msgid "):
            block = [line[6:]]
            i += 1
            while i < len(lines) and lines[i].startswith('"'):
                block.append(lines[i])
                i += 1
            msgid = unquote(block)
            out.append("msgid " + block[0])
            out.extend(block[1:])
            if i < len(lines) and lines[i].startswith("msgstr "):
                sblock = [lines[i][7:]]
                i += 1
                while i < len(lines) and lines[i].startswith('"'):
                    sblock.append(lines[i])
                    i += 1
                current = unquote(sblock)
                if msgid and not current:
                    if msgid in glossary:
                        out.append("msgstr " + quote(glossary[msgid]))
                    else:
                        missing.append(msgid)
                        out.append('msgstr ""')
                else:
                    out.append("msgstr " + sblock[0])
                    out.extend(sblock[1:])
            continue
        out.append(line)
        i += 1
    text = "\n".join(out) + "\n"
    text = text.replace('#, fuzzy\nmsgid ""', 'msgid ""', 1)
    PO.write_text(text)
    for m in missing:
        print(f"untranslated: {m!r}", file=sys.stderr)
    subprocess.run(["msgfmt", "-o", str(PO.with_suffix(".mo")), str(PO)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
