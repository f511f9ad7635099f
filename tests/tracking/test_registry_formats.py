"""Which files are models, decided from their bytes: real files written by scikit-learn, joblib,
numpy and torch; minimal handcrafted headers for the formats whose libraries are not installed here
(ONNX, safetensors, Keras, XGBoost, LightGBM, CatBoost) and a stand-in DataFrame class (no pandas)."""

from __future__ import annotations

import json
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from workbench.tracking import registry
from workbench.tracking.model_formats import ModelFormat, sniff, walk_pickle

X = np.random.default_rng(0).random((40, 3))
Y = (X[:, 0] > 0.5).astype(int)
COMPRESSIONS = ("zlib", "gzip", "bz2", "xz", "lzma")


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y)


def test_sklearn_pickles_and_joblib_files_are_models(tmp_path: Path, forest: RandomForestClassifier) -> None:
    expected = ModelFormat("pickle", "sklearn", sklearn.__version__)
    clf = LogisticRegression().fit(X, Y)
    for protocol in (0, 2, 4, 5):
        path = tmp_path / f"clf{protocol}.pkl"
        path.write_bytes(pickle.dumps(clf, protocol=protocol))
        assert sniff(path) == expected, protocol
    joblib.dump(forest, tmp_path / "rf.joblib")
    assert sniff(tmp_path / "rf.joblib") == ModelFormat("joblib", "sklearn", sklearn.__version__)
    for method in COMPRESSIONS:
        path = tmp_path / f"rf-{method}.joblib"
        joblib.dump(forest, path, compress=(method, 3))
        assert sniff(path) == ModelFormat("joblib", "sklearn", sklearn.__version__), method
    # The suffix is no part of it: an estimator in a .bin is a model, a .joblib of arrays is not.
    joblib.dump(forest, tmp_path / "weights.bin", compress=3)
    assert sniff(tmp_path / "weights.bin") is not None


def test_arrays_dicts_and_lists_are_not_models(tmp_path: Path) -> None:
    data = {"x": X, "y": Y}
    files = {
        "train.pkl": pickle.dumps(X), "test.pkl": pickle.dumps(data, protocol=2),
        "list.pkl": pickle.dumps([X, Y]),
        "old.pkl": pickle.dumps(data, protocol=0), "nested.pkl": pickle.dumps({"model": "not one", "x": X}),
    }
    for name, payload in files.items():
        (tmp_path / name).write_bytes(payload)
    joblib.dump(X, tmp_path / "features.joblib")
    joblib.dump(data, tmp_path / "split.joblib")
    for method in COMPRESSIONS:
        joblib.dump(data, tmp_path / f"split-{method}.joblib", compress=(method, 3))
    (tmp_path / "notes.txt").write_text("tree of life\nversion=2\n")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    (tmp_path / "empty.pkl").write_bytes(b"")
    for one in (b"x", b"\x80", b"\x08", b"P", b"\x1f", b"]"):
        (tmp_path / f"byte-{one.hex()}.pkl").write_bytes(one)
    (tmp_path / "garbage.pkl").write_bytes(b"\x80\x04garbage that is no pickle")
    found = {p.name: sniff(p) for p in tmp_path.iterdir()}
    assert found == dict.fromkeys(found, None)


def test_a_dataframe_is_not_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pandas is not installed here: a class registered as ``pandas.core.frame.DataFrame`` pickles
    to the same top-level global a real DataFrame has (a stand-in, said so in the docstring)."""
    modules = {name: types.ModuleType(name) for name in ("pandas", "pandas.core", "pandas.core.frame")}
    frame_class = type("DataFrame", (), {"__module__": "pandas.core.frame"})
    modules["pandas.core.frame"].DataFrame = frame_class  # type: ignore[attr-defined]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    frame = frame_class()
    frame.columns = ["a", "b"]
    frame.values = X
    (tmp_path / "frame.pkl").write_bytes(pickle.dumps(frame))
    assert walk_pickle((tmp_path / "frame.pkl").read_bytes()).top == ("pandas.core.frame", "DataFrame")
    assert sniff(tmp_path / "frame.pkl") is None
    joblib.dump(frame, tmp_path / "frame.joblib", compress=3)
    assert sniff(tmp_path / "frame.joblib") is None


def test_torch_checkpoints_are_models_and_tensors_are_not(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    torch.save(net.state_dict(), tmp_path / "state.pt")
    torch.save(net, tmp_path / "module.pth")
    torch.save({"model_state_dict": net.state_dict(), "epoch": 3}, tmp_path / "checkpoint.ckpt")
    torch.save(net.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("state.pt", "module.pth", "checkpoint.ckpt", "legacy.pt"):
        assert sniff(tmp_path / name) == ModelFormat("torch", "torch"), name
    torch.save(torch.zeros(3, 3), tmp_path / "tensor.pt")
    torch.save({"x": torch.zeros(2), "y": torch.ones(2)}, tmp_path / "data.pt")
    torch.save([torch.zeros(2)], tmp_path / "batches.pt")
    for name in ("tensor.pt", "data.pt", "batches.pt"):
        assert sniff(tmp_path / name) is None, name


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_handcrafted_headers_of_other_formats(tmp_path: Path) -> None:
    """Minimal valid files by each format's specification (their libraries are not installed)."""
    graph = _field(2, b"main") + _field(11, _field(1, b"x"))
    onnx = (b"\x08\x08" + _field(2, b"pytorch") + _field(3, b"2.13") + _field(7, graph)
            + _field(8, b"\x10\x11"))
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "__metadata__": {"format": "pt"}}).encode()
    keras = tmp_path / "net.keras"
    with zipfile.ZipFile(keras, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.6.0", "date_saved": "x"}))
        archive.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        archive.writestr("model.weights.h5", b"")
    files = {
        "net.onnx": onnx, "weights.safetensors": struct.pack("<Q", len(header)) + header + b"\0" * 8,
        "booster.json": json.dumps({"learner": {"attributes": {}}, "version": [2, 1, 3]}).encode(),
        "lgbm.txt": b"tree\nversion=v4\nnum_class=1\n", "model.cbm": b"CBM1" + b"\0" * 32,
        "net.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 64 + b"model_config" + b"\0" * 16,
    }
    for name, payload in files.items():
        (tmp_path / name).write_bytes(payload)
    assert {p.name: sniff(p) for p in tmp_path.iterdir()} == {
        "net.onnx": ModelFormat("onnx", "onnx"),
        "weights.safetensors": ModelFormat("safetensors", "safetensors"),
        "booster.json": ModelFormat("xgboost", "xgboost", "2.1.3"),
        "lgbm.txt": ModelFormat("lightgbm", "lightgbm"),
        "model.cbm": ModelFormat("catboost", "catboost"), "net.h5": ModelFormat("keras", "keras"),
        "net.keras": ModelFormat("keras", "keras", "3.6.0"),
    }
    # The same extensions on bytes of another kind are not models.
    fakes = {
        "fake.onnx": b"\x08\x08" + _field(2, b"pytorch") + b"\xff\xff\xff",  # not a ModelProto: no graph
        "noise.onnx": b"\x08\x07" + b"\x99" * 40,
        "fake.safetensors": struct.pack("<Q", 12) + b'{"a": 1}    ',
        "config.json": b'{"lr": 0.1}', "plain.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 64,
    }
    for name, payload in fakes.items():
        (tmp_path / name).write_bytes(payload)
        assert sniff(tmp_path / name) is None, name
    empty_zip = tmp_path / "archive.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert sniff(empty_zip) is None


def test_framework_version_as_the_file_states_it_else_from_the_run(tmp_path: Path) -> None:
    joblib.dump(LogisticRegression().fit(X, Y), tmp_path / "clf.joblib")
    # scikit-learn writes its version into the estimator: that wins over the run's package list
    assert registry.detect_framework(tmp_path / "clf.joblib", {"scikit-learn": "0.0"}) == (
        "sklearn", sklearn.__version__)
    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "w.pt")
    assert registry.detect_framework(tmp_path / "w.pt", {"torch": "2.99"}) == ("torch", "2.99")
