"""The zoo table of ``docs/zoo.md``, generated from the model cards and the weights' records.

One row per zoo network: its name, the title of its card, the trainable parameters and the
receptive field its card states, the overrides it accepts, whether pretrained weights ship in
the package, and their Dice on Colin27, the held-out real brain, as shipped (from
``weights/<name>.json``, written by ``python -m dilnet_zoo.recipes.train`` and scored by
``python -m dilnet_zoo.recipes.evaluate``). A second table (`colin27_table`) gives every
pretrained network's Dice on Colin27 stored six ways. Only the package's own files are read:
weights found through ``$DILNET_ZOO_DIR`` do not change the documentation.

The tables sit in ``docs/zoo.md`` between the lines `START` and `END` and between
`COLIN27_START` and `COLIN27_END`; rewrite them with

    python -m dilnet_zoo.table --write      # or: make figures

and ``python -m dilnet_zoo.table --check`` exits with status 1 when one is out of date (the test
suite checks the same).
"""

import argparse
import importlib.resources
import json
import re
import sys
from pathlib import Path

import attrs

import dilnet_zoo
from dilnet.errors import ConfigError

__all__ = [
    "END",
    "START",
    "ZooFacts",
    "cards_table",
    "colin27_table",
    "current_table",
    "docs_path",
    "model_facts",
    "replace_table",
    "replace_tables",
]

START = "<!-- zoo-table -->"
END = "<!-- end zoo-table -->"
COLIN27_START = "<!-- colin27-table -->"
COLIN27_END = "<!-- end colin27-table -->"
#: the row of ``metrics["colin27"]`` the zoo table shows: the file as shipped
TABLE_CONDITION = "native 1 mm"
#: the first line between the markers, for whoever edits the page
NOTE = (
    "<!-- generated from dilnet_zoo/cards and dilnet_zoo/weights by "
    "`python -m dilnet_zoo.table --write`: edit those, not this table -->"
)

#: the classes whose mean Dice the recipe reports (background excluded)
DICE_CLASSES = ("csf", "grey matter", "white matter")

HEADER = (
    "| name | summary | trainable parameters | receptive field | overrides (defaults) "
    "| pretrained | Dice on Colin27 (held out, 1 mm): mean (CSF / GM / WM) |",
    "|---|---|---:|---|---|---|---|",
)


@attrs.frozen(kw_only=True)
class ZooFacts:
    """What the table says about one zoo network.

    Attributes
    ----------
    name : str
        The zoo name.
    summary : str
        The title of its card (after ``name: ``).
    parameters : int
        Trainable parameters, as the card states them.
    receptive_field : int
        Receptive field in voxels per axis, as the card states it.
    overrides : str
        The card's overrides row (markdown): the accepted overrides and their defaults.
    pretrained : bool
        Whether the package ships weights (``weights/<name>.npz``).
    dice : dict or None
        Dice on Colin27 as shipped (`TABLE_CONDITION`) per class of `DICE_CLASSES` and their
        ``"mean"``, from the record ``weights/<name>.json``; None where none was measured.
    """

    name: str
    summary: str
    parameters: int
    receptive_field: int
    overrides: str
    pretrained: bool
    dice: dict | None


def _card_row(name, text, label):
    match = re.search(rf"^\|\s*{re.escape(label)}\s*\|\s*(.+?)\s*\|\s*$", text, re.M)
    if match is None:
        raise ConfigError(
            f"dilnet_zoo/cards/{name}.md: expected a table row `| {label} | ... |`; "
            "received a card without one"
        )
    return match.group(1)


def _package_file(*parts):
    resource = importlib.resources.files("dilnet_zoo").joinpath(*parts)
    return Path(str(resource)) if resource.is_file() else None


def model_facts(name) -> ZooFacts:
    """The facts of zoo network `name` that the table shows, read from its card and record.

    Raises
    ------
    ConfigError
        For an unknown name, or a card that lacks its title or one of the rows
        ``receptive field``, ``trainable parameters`` and ``overrides``.
    """
    text = dilnet_zoo.card(name)
    title = text.splitlines()[0]
    prefix = f"# {name}: "
    if not title.startswith(prefix):
        raise ConfigError(
            f"dilnet_zoo/cards/{name}.md: expected a first line `{prefix}<summary>`; "
            f"received {title!r}"
        )
    field = _card_row(name, text, "receptive field")
    size = re.match(r"(\d+)³", field)
    if size is None:
        raise ConfigError(
            f"dilnet_zoo/cards/{name}.md: expected the receptive field as `N³ voxels`; "
            f"received {field!r}"
        )
    parameters = _card_row(name, text, "trainable parameters")
    if not re.fullmatch(r"\d{1,3}(,\d{3})*", parameters):
        raise ConfigError(
            f"dilnet_zoo/cards/{name}.md: expected the trainable parameters as `1,234`; "
            f"received {parameters!r}"
        )
    dice = None
    record_path = _package_file("weights", f"{name}.json")
    if record_path is not None:
        metrics = json.loads(record_path.read_text())["metrics"]
        if "colin27" in metrics:
            row = metrics["colin27"][TABLE_CONDITION]
            dice = {c: row[c] for c in DICE_CLASSES}
            dice["mean"] = row["mean CSF/GM/WM"]
    return ZooFacts(
        name=name,
        summary=title[len(prefix) :].strip(),
        parameters=int(parameters.replace(",", "")),
        receptive_field=int(size.group(1)),
        overrides=_card_row(name, text, "overrides"),
        pretrained=_package_file("weights", f"{name}.npz") is not None,
        dice=dice,
    )


def _row(facts):
    dice = facts.dice
    if dice is None:
        measured = "—"
    else:
        classes = " / ".join(f"{dice[c]:.3f}" for c in DICE_CLASSES)
        measured = f"{dice['mean']:.3f} ({classes})"
    cells = (
        f"`{facts.name}`",
        facts.summary,
        f"{facts.parameters:,}",
        f"{facts.receptive_field}³",
        facts.overrides,
        "yes" if facts.pretrained else "no",
        measured,
    )
    return "| " + " | ".join(cells) + " |"


def cards_table() -> str:
    """The markdown table of every zoo network (`list_models` order), without markers.

    Examples
    --------
    >>> import dilnet_zoo
    >>> print(dilnet_zoo.cards_table().splitlines()[2])  # doctest: +ELLIPSIS
    | `context3d-basic` | Yu & Koltun's context module (ICLR 2016) in 3D | 49,300 | 69³ | ...
    """
    rows = [_row(model_facts(name)) for name in dilnet_zoo.list_models()]
    return "\n".join([*HEADER, *rows])


def colin27_table() -> str:
    """The markdown table of every pretrained zoo network's Dice on Colin27 stored six ways
    (``metrics["colin27"]`` of its record, `dilnet_zoo.recipes.evaluate.CONDITIONS` order)."""
    from dilnet_zoo.recipes.evaluate import CONDITIONS

    lines = [
        "| Colin27 stored as | network | CSF | GM | WM | mean GM/WM |",
        "|---|---|---:|---:|---:|---:|",
    ]
    records = {}
    for name in dilnet_zoo.list_models():
        path = _package_file("weights", f"{name}.json")
        if path is not None:
            metrics = json.loads(path.read_text())["metrics"]
            if "colin27" in metrics:
                records[name] = metrics["colin27"]
    for condition in CONDITIONS:
        for name, rows in records.items():
            r = rows[condition]
            lines.append(
                f"| {condition} | `{name}` | {r['csf']:.3f} | {r['grey matter']:.3f} | "
                f"{r['white matter']:.3f} | {r['mean GM/WM']:.3f} |"
            )
    return "\n".join(lines)


def _markers(text, where, start_line=START, end_line=END):
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == start_line]
    ends = [i for i, line in enumerate(lines) if line.strip() == end_line]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ConfigError(
            f"{where}: expected one line {start_line!r} and after it one line {end_line!r}; "
            f"received {len(starts)} start and {len(ends)} end markers"
        )
    return lines, starts[0], ends[0]


def replace_table(text, table, where="docs/zoo.md", markers=(START, END)) -> str:
    """`text` with what lies between its `markers` lines (`START` and `END` by default)
    replaced by `table`.

    Raises
    ------
    ConfigError
        When the markers are missing, repeated or out of order (naming `where`).
    """
    lines, start, end = _markers(text, where, *markers)
    return "\n".join([*lines[: start + 1], NOTE, "", table, "", *lines[end:]])


def replace_tables(text, where="docs/zoo.md") -> str:
    """`text` with both generated tables (`cards_table`, `colin27_table`) rewritten."""
    text = replace_table(text, cards_table(), where)
    return replace_table(text, colin27_table(), where, (COLIN27_START, COLIN27_END))


def current_table(text, where="docs/zoo.md") -> str:
    """The zoo table between the markers of `text` (`ConfigError` as `replace_table`)."""
    lines, start, end = _markers(text, where)
    inside = [line for line in lines[start + 1 : end] if line.strip() and line != NOTE]
    return "\n".join(inside)


def docs_path() -> Path:
    """``docs/zoo.md`` of the source checkout this package lies in."""
    return Path(__file__).resolve().parents[1] / "docs" / "zoo.md"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite the table in the page")
    group.add_argument("--check", action="store_true", help="exit 1 if the page's table is stale")
    parser.add_argument("--path", type=Path, default=None, help="the page (default: docs/zoo.md)")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        print(cards_table() + "\n\n" + colin27_table())
        return 0
    path = args.path or docs_path()
    text = path.read_text()
    new = replace_tables(text, str(path))
    if args.check:
        if new != text:
            print(
                f"{path}: the zoo tables are out of date; run `python -m dilnet_zoo.table --write`"
            )
            return 1
        return 0
    if new != text:
        path.write_text(new)
        print(f"{path}: zoo tables rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
