"""The zoo table of docs/zoo.md: generated from the cards and records, current, and true.

The table reads the cards' stated facts; these tests hold them against independent ones: the
parameter counts and receptive fields of the built networks, the weight files in the package
and the recipe's JSON records.
"""

import importlib.resources
import json
from pathlib import Path

import pytest

import dilnet_zoo
from dilnet import build
from dilnet.errors import ConfigError
from dilnet_zoo import table
from dilnet_zoo.recipes.evaluate import CONDITIONS

ROOT = Path(__file__).resolve().parents[2]
FIX = "python -m dilnet_zoo.table --write"


def rows(markdown):
    """name -> list of cells for each data row of a markdown table."""
    out = {}
    for line in markdown.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        out[cells[0].strip("`")] = cells
    return out


def package_file(*parts):
    resource = importlib.resources.files("dilnet_zoo").joinpath(*parts)
    return Path(str(resource)) if resource.is_file() else None


def test_docs_zoo_table_is_current():
    text = (ROOT / "docs" / "zoo.md").read_text()
    page = table.current_table(text)
    generated = table.cards_table()
    assert page == generated, (
        "docs/zoo.md: the zoo table differs from the one the cards and weight records give; "
        f"run `{FIX}` (or `make figures`) and commit docs/zoo.md.\n"
        f"--- docs/zoo.md\n{page}\n--- generated\n{generated}"
    )
    # and the rewrite leaves an up-to-date page exactly as it is, the Colin27 table included
    assert table.replace_tables(text) == text, (
        f"docs/zoo.md: the Colin27 table differs from the weight records'; run `{FIX}`"
    )


def test_one_row_per_model_in_registry_order():
    assert list(rows(dilnet_zoo.cards_table())) == dilnet_zoo.list_models()


@pytest.mark.parametrize("name", dilnet_zoo.list_models())
def test_row_matches_the_built_network_and_the_package(name):
    cells = rows(dilnet_zoo.cards_table())[name]
    network = build(dilnet_zoo.get_spec(name))
    assert cells[2] == f"{network.count_params(trainable=True):,}"
    field = network.receptive_field
    assert all(axis.size == field[0].size for axis in field)
    assert cells[3] == f"{field[0].size}³"
    defaults = dilnet_zoo.info(name).defaults
    for key in ("num_classes", "in_channels"):
        assert f"`{key}` ({defaults[key]})" in cells[4]
    shipped = package_file("weights", f"{name}.npz") is not None
    assert cells[5] == ("yes" if shipped else "no")
    assert dilnet_zoo.card(name).startswith(f"# {name}: {cells[1]}\n")


@pytest.mark.parametrize("name", dilnet_zoo.list_models())
def test_dice_comes_from_the_weights_record(name):
    cells = rows(dilnet_zoo.cards_table())[name]
    record_path = package_file("weights", f"{name}.json")
    if record_path is None:
        assert cells[6] == "—"
        return
    record = json.loads(record_path.read_text())
    colin27 = record["metrics"]["colin27"]
    assert list(colin27) == list(CONDITIONS)
    for row in colin27.values():
        dice = [row["csf"], row["grey matter"], row["white matter"]]
        assert row["mean CSF/GM/WM"] == pytest.approx(sum(dice) / 3)
        assert row["mean GM/WM"] == pytest.approx(sum(dice[1:]) / 2)
    dice = colin27["native 1 mm"]
    mean = dice["mean CSF/GM/WM"]
    assert cells[6] == (
        f"{mean:.3f} ({dice['csf']:.3f} / {dice['grey matter']:.3f} / {dice['white matter']:.3f})"
    )
    # the card shows the same figures
    card = dilnet_zoo.card(name)
    for condition, row in colin27.items():
        assert (
            f"| {condition} | {row['csf']:.3f} | {row['grey matter']:.3f} | "
            f"{row['white matter']:.3f} | {row['mean GM/WM']:.3f} |"
        ) in card
    # the record describes this network
    network = build(dilnet_zoo.get_spec(name))
    assert record["parameters"] == network.count_params(trainable=True)
    assert record["receptive_field"] == network.receptive_field[0].size


def test_user_weights_do_not_change_the_table(tmp_path, monkeypatch):
    before = dilnet_zoo.cards_table()
    (tmp_path / "highres3dnet.npz").write_bytes(b"")
    monkeypatch.setenv("DILNET_ZOO_DIR", str(tmp_path))
    assert dilnet_zoo.weights_path("highres3dnet") is not None
    assert dilnet_zoo.cards_table() == before


def test_replace_table_and_markers():
    page = f"# Zoo\n\n{table.START}\nold\n{table.END}\n\nafter\n"
    new = table.replace_table(page, "| a |\n|---|")
    assert new == f"# Zoo\n\n{table.START}\n{table.NOTE}\n\n| a |\n|---|\n\n{table.END}\n\nafter\n"
    assert table.current_table(new) == "| a |\n|---|"
    for broken in ("no markers", f"{table.END}\n{table.START}", f"{table.START}\n{table.START}"):
        with pytest.raises(ConfigError, match=r"page.md: expected one line '<!-- zoo-table -->'"):
            table.replace_table(broken, "", where="page.md")


def test_check_and_write_commands(tmp_path, capsys):
    page = tmp_path / "zoo.md"
    page.write_text(
        f"intro\n{table.START}\nstale\n{table.END}\n{table.COLIN27_START}\n{table.COLIN27_END}\n"
    )
    assert table.main(["--check", "--path", str(page)]) == 1
    assert FIX in capsys.readouterr().out
    assert table.main(["--write", "--path", str(page)]) == 0
    assert table.main(["--check", "--path", str(page)]) == 0
    assert table.current_table(page.read_text()) == dilnet_zoo.cards_table()
    assert table.colin27_table() in page.read_text()


def test_a_card_without_its_facts_is_an_error(monkeypatch):
    monkeypatch.setattr(dilnet_zoo, "card", lambda name: f"# {name}: a network\n\nno table\n")
    with pytest.raises(
        ConfigError, match=r"cards/plain3d.md: expected a table row `\| receptive field \|"
    ):
        table.model_facts("plain3d")


def test_readme_and_quickstart_state_the_recorded_colin27_dice():
    record = json.loads(package_file("weights", f"{dilnet_zoo.DEFAULT}.json").read_text())
    row = record["metrics"]["colin27"][table.TABLE_CONDITION]
    csf, gm, wm = (f"{row[c]:.3f}" for c in ("csf", "grey matter", "white matter"))
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"pretrained `{dilnet_zoo.DEFAULT}`" in readme
    assert f"Dice {csf} (CSF), {gm} (grey matter), {wm} (white matter) on Colin27" in readme
    quickstart = " ".join((ROOT / "docs" / "quickstart.md").read_text().split())
    assert f"pretrained `{dilnet_zoo.DEFAULT}`" in quickstart
    assert f"reaches CSF {csf}, grey matter {gm} and white matter {wm} on Colin27" in quickstart
