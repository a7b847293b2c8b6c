"""The Clean Pixel Data option on real ultrasound files (deid-data): the rules' regions are
blanked in every frame, nothing else in the image changes, and images the rules do not cover
stay withheld."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from api.cli import cli

from .deid_data import deid_data_files
from .test_deid_run import SECRET, SITE_KEY, report

RULES = {"rules": [
    {"match": {"Modality": "US", "Manufacturer": "Philips Medical Systems"},
     "regions": [[0, 0, 2000, 60], [700, 500, 1024, 768]]},
    {"match": {"Modality": "CT"}, "regions": [[0, 0, 100, 100]]},
]}


def _deid(tmp_path: Path, in_dir: Path, rules: object) -> tuple[int, str]:
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    result = CliRunner().invoke(cli, [
        "deid", str(in_dir), str(tmp_path / "out"), "--schema", "person",
        "--secret-file", str(tmp_path / "secret"), "--site-key-file", str(tmp_path / "site"),
        "--clean-pixel-data", str(tmp_path / "rules.json"), "--workers", "1"])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pixels")
    in_dir = root / "in"
    in_dir.mkdir()
    for path in deid_data_files("ultrasounds") + deid_data_files("humans")[:1]:
        shutil.copy(path, in_dir / path.name)
    code, output = _deid(root, in_dir, RULES)
    assert code == 0, output
    return root


def _pixels(path: Path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array


@pytest.mark.parametrize("name", ["GREYSCALE_IMAGE.dcm", "ultrasound-multiframe.dcm"])
def test_matching_images_have_their_regions_blanked_and_nothing_else(cleaned: Path,
                                                                    name: str) -> None:
    row = report(cleaned / "out")[name]
    assert row["status"] == "written", row
    before = _pixels(cleaned / "in" / name)
    output = cleaned / "out" / row["output"]
    after = _pixels(output)
    assert after.shape == before.shape
    # one greyscale frame (rows, columns) or RGB frames (frames, rows, columns, 3)
    frames, original = (after, before) if after.ndim == 4 else (after[None], before[None])
    mask = np.zeros(frames.shape[1:3], dtype=bool)
    mask[0:60, :] = True
    mask[500:768, 700:1024] = True
    assert (frames[:, mask] == 0).all()
    assert (frames[:, ~mask] == original[:, ~mask]).all()
    assert original[:, mask].any()  # there was something to blank
    ds = pydicom.dcmread(output, stop_before_pixels=True)
    assert ds.BurnedInAnnotation == "NO"
    assert "113101" in [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]


def test_images_no_rule_covers_or_that_cannot_be_cleaned_are_withheld(cleaned: Path) -> None:
    rows = report(cleaned / "out")
    assert rows["RGB_IMAGE.dcm"]["status"] == "withheld"  # Siemens: no rule
    assert "no --clean-pixel-data rule matches Modality=US, Manufacturer=SIEMENS" in \
        rows["RGB_IMAGE.dcm"]["reason"]
    assert rows["ctbrain1.dcm"]["status"] == "withheld"  # a rule matches, JPEG cannot be
    assert "compressed" in rows["ctbrain1.dcm"]["reason"]


@pytest.mark.parametrize(("rules", "message"), [
    ({"rules": [{"match": {"Modality": "US"}, "regions": [[10, 0, 5, 5]]}]},
     "rules[0].regions[0]"),
    ({"rules": [{"match": {"NotAKeyword": "US"}, "regions": [[0, 0, 5, 5]]}]},
     "'NotAKeyword' is not a DICOM attribute keyword"),
    ({"rules": [{"match": {"Modality": "US"}}]}, "rules[0] must be an object"),
    ([], "expected {\"rules\""),
])
def test_bad_rules_are_refused_naming_rule_and_field(tmp_path: Path, rules: object,
                                                     message: str) -> None:
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    code, output = _deid(tmp_path, in_dir, rules)
    assert code != 0
    assert message in output and "rules.json" in output
    assert not (tmp_path / "out").exists()
