"""The stored info a run records without pydantic (``task_info.info_fields``) is exactly what the
documented ``TaskInfo`` model dumps: same keys, order and texts, so stored JSON is unchanged."""

import datetime
import json
import random

import pytest

from fluidml.task import TaskInfo, TaskState
from fluidml.task_info import info_fields, iso_duration

START = datetime.datetime(2024, 2, 29, 23, 59, 58, 123400)


def model_dump(**fields):
    return TaskInfo.model_construct(**fields).model_dump(mode="json")


@pytest.mark.parametrize("fields", [
    dict(project_name="p", run_name="r", state=TaskState.FINISHED, started=START,
         ended=START + datetime.timedelta(seconds=1.5), duration=datetime.timedelta(seconds=1.5),
         run_history={"a": "r-1", "b": "r-2"}, sweep_counter="001", unique_config_hash="0a9z", id="r-001"),
    dict(project_name="", run_name="", state=None, started=None, ended=None, duration=None, run_history=None,
         sweep_counter=None, unique_config_hash=None, id="-None"),
    dict(project_name="proj", run_name="x", state=TaskState.FAILED, started=datetime.datetime(2001, 1, 1),
         ended=datetime.datetime(2001, 1, 3, 4, 5, 6), duration=datetime.timedelta(days=2, hours=4, minutes=5, seconds=6),
         run_history={}, sweep_counter=None, unique_config_hash="h", id="x-h"),
    dict(project_name="p", run_name="r", state=TaskState.RUNNING, started=START, ended=None,
         duration=datetime.timedelta(days=800, microseconds=7), run_history=None, sweep_counter="12",
         unique_config_hash=None, id="r-12"),
    dict(project_name="p", run_name="aware", state=TaskState.KILLED,
         started=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), ended=None, duration=None,
         run_history=None, sweep_counter=None, unique_config_hash=None, id=None),
])
def test_info_fields_equal_the_models_dump(fields):
    ours = info_fields(**fields)
    assert ours == model_dump(**fields)
    assert list(ours) == list(TaskInfo.model_fields)
    assert json.dumps(ours, indent=4) == json.dumps(model_dump(**fields), indent=4)


def test_durations_are_written_as_pydantic_writes_them():
    rng = random.Random(12)
    deltas = [datetime.timedelta(0), datetime.timedelta(microseconds=1), datetime.timedelta(hours=1),
              datetime.timedelta(days=365), datetime.timedelta(days=366, seconds=1), datetime.timedelta(minutes=1),
              datetime.timedelta(days=-1, seconds=5), datetime.timedelta(microseconds=-3)]
    for scale in (1e-3, 1, 100, 1e4, 1e6, 1e8):
        deltas += [datetime.timedelta(seconds=rng.uniform(-scale, scale)) for _ in range(40)]
        deltas += [datetime.timedelta(seconds=round(rng.uniform(0, scale))) for _ in range(20)]
    for delta in deltas:
        assert iso_duration(delta) == model_dump(project_name="", run_name="", duration=delta)["duration"], delta


def test_task_results_made_quickly_equal_the_models_construction():
    from fluidml._task_models import task_results
    from fluidml.task import TaskResults

    for results in ({"value": [1, 2]}, None):
        quick = task_results("train", "train-2", {"train": {"lr": 0.1}}, results)
        model = TaskResults.model_construct(task_name="train", task_unique_name="train-2",
                                            unique_config={"train": {"lr": 0.1}}, results=results)
        assert type(quick) is TaskResults and quick == model
        assert quick.model_fields_set == model.model_fields_set == set(TaskResults.model_fields)
        assert quick.model_dump() == model.model_dump() and repr(quick) == repr(model)


def test_short_hashes_are_the_first_eight_base36_digits():
    from fluidml.identity import _short_hash

    def base36(number: int) -> str:
        text = ""
        while number:
            number, digit = divmod(number, 36)
            text = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + text
        return text or "0"

    rng = random.Random(3)
    for bits in (128, 128, 128, 64, 41, 40, 20, 5, 1, 0):
        for _ in range(200):
            number = rng.getrandbits(bits) if bits else 0
            assert _short_hash(f"{number:032x}") == base36(number)[:8], number
    assert _short_hash("0" * 32) == "0" and _short_hash("f" * 32) == "f5lxx1zz"
