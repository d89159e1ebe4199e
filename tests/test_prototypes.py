import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scribe_rm.cli import app
from scribe_rm.library import BUILTIN_DOMAINS as DOMAINS, CardError, load_card, load_library

FALLBACK = "general.step_validity"


def test_library_has_the_promised_cards(library):
    by_domain = {d: [c for c in library.cards.values() if c.domain == d] for d in DOMAINS}
    assert len(library.cards) >= 40
    assert len(by_domain["math"]) >= 16
    assert len(by_domain["tool_use"]) >= 14
    assert {c.id for c in by_domain["agent"]} >= {"agent.user_authentication", "agent.policy_check",
                                                 "agent.troubleshooting", "agent.conversation_closing"}
    assert FALLBACK in library.cards
    for card in library.cards.values():
        assert sorted(card.rubric) == [0, 1, 2, 3]
        assert len(set(card.examples)) >= 4
        assert all(0 <= fm.score <= 3 for fm in card.failure_modes)


def test_paper_boundary_leak_failure_mode_scores_two(library):
    card = library.cards["math.bound_conclusion"]
    leak = next(fm for fm in card.failure_modes if fm.name == "boundary leak")
    assert leak.score == 2
    assert "44.75" in leak.description


def _copy_library(tmp_path: Path, src: Path) -> Path:
    dst = tmp_path / "cards"
    shutil.copytree(src, dst)
    return dst


def _edit(path: Path, **changes) -> None:
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize("changes, field, words", [
    ({"rubric": {0: "a", 1: "b", 2: "c"}}, "rubric", "exactly the levels 0, 1, 2, 3"),
    ({"domain": "Cooking!"}, "domain", "pattern"),
    ({"examples": ["one", "two", "three"]}, "examples", "at least 4"),
    ({"examples": ["same", "same", "b", "c"]}, "examples", "distinct"),
    ({"when_to_use": None}, "when_to_use", "Field required"),
    ({"surprise": 1}, "surprise", "Extra inputs"),
    ({"failure_modes": [{"name": "x", "description": "y", "score": 7}]}, "failure_modes.0.score", "less than or equal"),
])
def test_invalid_card_error_names_file_and_field(tmp_path, settings, changes, field, words):
    card = tmp_path / "card.yaml"
    shutil.copy(settings.library_dir / "math" / "counting.yaml", card)
    _edit(card, **changes)
    with pytest.raises(CardError) as err:
        load_card(card)
    message = str(err.value)
    assert str(card) in message and f"field '{field}'" in message and words in message


def test_invalid_yaml_is_reported_with_file(tmp_path):
    card = tmp_path / "broken.yaml"
    card.write_text("id: x.y\nname: [unclosed\n")
    with pytest.raises(CardError, match="broken.yaml: not valid YAML"):
        load_card(card)


def test_duplicate_id_names_both_files(tmp_path, settings):
    cards = _copy_library(tmp_path, settings.library_dir)
    shutil.copy(cards / "math" / "counting.yaml", cards / "math" / "zz_copy.yaml")
    with pytest.raises(CardError, match=r"zz_copy.yaml: field 'id': 'math.counting' is already defined in .*counting.yaml"):
        load_library(cards, FALLBACK)


def test_on_invalid_skip_reports_and_keeps_the_rest(tmp_path, settings, library):
    cards = _copy_library(tmp_path, settings.library_dir)
    _edit(cards / "math" / "counting.yaml", rubric={0: "only one level"})
    with pytest.raises(CardError):
        load_library(cards, FALLBACK, on_invalid="fail")
    skipped = load_library(cards, FALLBACK, on_invalid="skip")
    assert "math.counting" not in skipped.cards
    assert len(skipped.cards) == len(library.cards) - 1
    assert len(skipped.skipped) == 1 and "counting.yaml" in skipped.skipped[0]


def test_missing_fallback_card_fails(tmp_path, settings):
    cards = _copy_library(tmp_path, settings.library_dir)
    (cards / "general" / "step_validity.yaml").unlink()
    with pytest.raises(CardError, match="fallback card 'general.step_validity' is missing"):
        load_library(cards, FALLBACK)


def test_version_is_a_content_hash(tmp_path, settings, library):
    cards = _copy_library(tmp_path, settings.library_dir)
    assert load_library(cards, FALLBACK).version == library.version  # same content, other place
    _edit(cards / "math" / "counting.yaml", name="Counting, reworded")
    assert load_library(cards, FALLBACK).version != library.version


def test_cli_validate_exit_codes(tmp_path, settings):
    runner = CliRunner()
    ok = runner.invoke(app, ["prototypes", "validate", str(settings.library_dir)])
    assert ok.exit_code == 0, ok.output
    assert "0 invalid" in ok.output
    cards = _copy_library(tmp_path, settings.library_dir)
    _edit(cards / "tool_use" / "abstain.yaml", domain="Cooking!")
    bad = runner.invoke(app, ["prototypes", "validate", str(cards)])
    assert bad.exit_code == 1
    assert "abstain.yaml" in bad.output and "domain" in bad.output


def test_a_mounted_configmap_loads_each_card_once(tmp_path, settings):
    """kubelet mounts a ConfigMap as <name> -> ..data/<name>, ..data -> ..<timestamp>/: hidden copies are skipped."""
    mount = tmp_path / "mount"
    stamp = mount / "..2026_11_22_20_00_00.123"
    stamp.mkdir(parents=True)
    for card in sorted((settings.library_dir / "math").glob("*.yaml"))[:3] + [settings.library_dir / "general" / "step_validity.yaml"]:
        shutil.copy(card, stamp / card.name)
        (mount / card.name).symlink_to(Path("..data") / card.name)
    (mount / "..data").symlink_to(stamp.name)
    library = load_library(mount, FALLBACK)
    assert len(library.cards) == 4
