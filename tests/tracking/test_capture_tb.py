"""The event-file reader of ``tracking/capture_tb.py`` (live capture and ``workbench import
tensorboard`` both read with it) on events built with TensorBoard's own protobuf classes (the copies
tensorboardX ships) and framed by tensorboardX's real writer: every kind of scalar it reads, what it
skips, and the hparams ``add_hparams`` writes, collected only when asked for."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from workbench.tracking.capture_tb import read_scalars

tbx = pytest.importorskip("tensorboardX")

from tensorboardX.event_file_writer import EventFileWriter  # noqa: E402
from tensorboardX.proto.event_pb2 import Event  # noqa: E402
from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata  # noqa: E402
from tensorboardX.proto.tensor_pb2 import TensorProto  # noqa: E402
from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto  # noqa: E402

DT_FLOAT, DT_DOUBLE, DT_INT64, DT_HALF = 1, 2, 9, 19


def _meta(plugin: str) -> SummaryMetadata:
    return SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=plugin))


def _scalar_shape() -> TensorShapeProto:
    return TensorShapeProto(dim=[])


def _values() -> list[Summary.Value]:
    return [
        Summary.Value(tag="simple", simple_value=1.5),
        Summary.Value(tag="float_val", metadata=_meta("scalars"),
                      tensor=TensorProto(dtype=DT_FLOAT, tensor_shape=_scalar_shape(), float_val=[2.5])),
        # no metadata at all (a writer may leave it out after a tag's first event): still a scalar
        Summary.Value(tag="bare_content",
                      tensor=TensorProto(dtype=DT_DOUBLE, tensor_shape=_scalar_shape(),
                                         tensor_content=struct.pack("<d", 3.25))),
        Summary.Value(tag="int64_val", metadata=_meta("scalars"),
                      tensor=TensorProto(dtype=DT_INT64, tensor_shape=_scalar_shape(), int64_val=[-7])),
        Summary.Value(tag="half_val", metadata=_meta("scalars"),
                      tensor=TensorProto(dtype=DT_HALF, tensor_shape=_scalar_shape(), half_val=[0x3800])),
        # not scalars: another plugin's one number, and three numbers
        Summary.Value(tag="histogram", metadata=_meta("histograms"),
                      tensor=TensorProto(dtype=DT_FLOAT, float_val=[9.0])),
        Summary.Value(tag="vector", metadata=_meta("scalars"),
                      tensor=TensorProto(dtype=DT_FLOAT, float_val=[1.0, 2.0, 3.0])),
    ]


@pytest.fixture(scope="module")
def event_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("events")
    writer = EventFileWriter(str(folder))
    writer.add_event(Event(wall_time=100.0, step=4, summary=Summary(value=_values())))
    for summary in tbx.summary.hparams({"lr": 0.01, "optimizer": "sgd", "nesterov": True}, {"best": 0.9}):
        writer.add_event(Event(wall_time=101.0, step=0, summary=summary))
    writer.close()
    return next(folder.glob("*tfevents*"))


def test_every_kind_of_scalar_is_read_and_the_rest_skipped(event_file: Path) -> None:
    points = {tag: (step, wall, value) for tag, step, wall, value in read_scalars(event_file)}
    assert points == {"simple": (4, 100.0, 1.5), "float_val": (4, 100.0, 2.5),
                      "bare_content": (4, 100.0, 3.25), "int64_val": (4, 100.0, -7.0),
                      "half_val": (4, 100.0, 0.5)}


def test_hparams_are_collected_only_when_asked(event_file: Path) -> None:
    params: dict[str, Any] = {}
    tags = [tag for tag, *_ in read_scalars(event_file, params)]
    assert params == {"lr": pytest.approx(0.01), "optimizer": "sgd", "nesterov": True}
    assert tags == [tag for tag, *_ in read_scalars(event_file)]  # the same scalars either way
