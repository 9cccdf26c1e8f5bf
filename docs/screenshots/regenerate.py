#!/usr/bin/python3
"""Regenerate docs/screenshots/: each seed experiment (a scenario file with
a [demo] table) run by the scenario engine, its report.html written and
opened in headless Chromium, the top of the page kept as NAME.png. What a
student sees after `./faultline demo`, for the README.

    sudo /usr/bin/python3 docs/screenshots/regenerate.py [NAME...]

Makes hosts (root, or user namespaces) and needs chromium
(ci/install-deps). The run's artifacts go to artifacts/screenshots/;
pytest/test_report.py checks that every seed experiment has its picture.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

from faultline import artifacts, browser, build, demo, report, scenario  # noqa: E402

HERE = Path(__file__).resolve().parent
# Wide enough for the overview of five forked connections (nine lanes);
# tall enough for the verdict and the first ladder.
WINDOW = (1900, 1300)
COLOURS = 64    # a palette keeps each picture near 50 KB in git


def shrink(png):
    from PIL import Image
    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=COLOURS)
    small.save(png, optimize=True)


def main(names):
    build.ensure_built()
    chosen = [(path, spec) for path, spec in demo.demo_scenarios()
              if not names or path.stem in names]
    unknown = set(names) - {path.stem for path, _ in chosen}
    if unknown:
        print(f"regenerate: no seed experiment named {', '.join(sorted(unknown))}",
              file=sys.stderr)
        return 2
    root = artifacts.fresh_dir("screenshots")
    failed = 0
    for path, _ in chosen:
        result = scenario.run(path, root / path.stem)
        page = report.write(result.artifacts)
        png = HERE / f"{path.stem}.png"
        seen = browser.screenshot(page, png, WINDOW)
        shrink(png)
        said = "" if result.passed else f" (the scenario FAILED: {result.reason()})"
        if seen.console:
            said += f" (console: {seen.console[0]})"
        failed += bool(said)
        print(f"{png.relative_to(HERE.parents[1])}: {page}{said}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
