#!/usr/bin/env python
"""Writes the few Lucide icons Chipper uses into one SVG sprite, with Lucide's licence.

    npm pack lucide-static@1.87.0 && tar xzf lucide-static-1.87.0.tgz
    .venv/bin/python scripts/vendor-icons.py package

The page refers to an icon as <svg class="icon"><use href=".../icons.svg#phone"></use></svg>;
css/base.css gives icons their stroke. Add a name to ICONS and run this again for a new one.
"""

import json
import re
import shutil
import sys
from pathlib import Path

ICONS = [
    "arrow-left",
    "camera",
    "ellipsis",
    "info",
    "messages-square",
    "mic",
    "mic-off",
    "paperclip",
    "phone",
    "phone-off",
    "screen-share",
    "screen-share-off",
    "search",
    "send-horizontal",
    "square-pen",
    "users",
    "video",
    "video-off",
    "x",
]
ROOT = Path(__file__).resolve().parents[1]


def main(package: Path) -> None:
    version = json.loads((package / "package.json").read_text())["version"]
    out = ROOT / "chipper" / "static" / "vendor" / f"lucide-{version}"
    out.mkdir(parents=True, exist_ok=True)
    symbols = []
    for name in ICONS:
        svg = (package / "icons" / f"{name}.svg").read_text()
        body = re.search(r"<svg[^>]*>(.*)</svg>", svg, re.S).group(1)
        body = re.sub(r"\s*\n\s*", "", body)
        symbols.append(f'<symbol id="{name}" viewBox="0 0 24 24">{body}</symbol>')
    (out / "icons.svg").write_text(
        f"<!-- Lucide {version} (ISC licence, see LICENSE): {', '.join(ICONS)} -->\n"
        '<svg xmlns="http://www.w3.org/2000/svg">\n' + "\n".join(symbols) + "\n</svg>\n"
    )
    shutil.copy(package / "LICENSE", out / "LICENSE")
    print(f"{len(ICONS)} icons into {out / 'icons.svg'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
