"""Regenerates the golden files from the ORIGINAL fluidml 0.3.4 (a development tool, not a test).

    python -m venv /tmp/orig && /tmp/orig/bin/pip install fluidml==0.3.4
    /tmp/orig/bin/python tests/golden/generate.py

Writes expansion.json (config grids and their expansions), flows.json (spec graphs and their
expanded tasks) and hashes.json (unique configs and their 8-character hashes), each case with the
original's result or the name of the exception it raised. The cases are random but seeded, so the
files only change when this script does. The tests compare this project against these files.
"""

import json
import pathlib
import random

from describe import build_flow, noop
from fluidml import Flow, TaskSpec
from fluidml.storage import InMemoryStore

HERE = pathlib.Path(__file__).parent


def random_value(rng, depth):
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return rng.choice([1, 2, 3, "s", "t", None, True, 0.5])
    if roll < 0.7:
        items = [random_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 1, 2, 2, 3]))]
        if rng.random() < 0.3:
            items.append(rng.choice(["@x", "@y"]))  # zip-group markers end a list
        return items
    return random_dict(rng, depth + 1)


def random_dict(rng, depth):
    return {key: random_value(rng, depth) for key in "abcd"[: rng.choice([0, 1, 2, 2, 3])]}


def expansion_cases(rng, count):
    cases = []
    for _ in range(count):
        case = {"config": random_dict(rng, 0), "expand": rng.choice(["product", "zip"]), "gp": rng.choice([None, "@"])}
        try:
            spec = TaskSpec(task=noop, config=case["config"], expand=case["expand"], config_group_prefix=case["gp"])
            case["result"] = [dict(task.config) for task in spec.expand()]
        except Exception as exc:  # noqa: BLE001 - the original crashes in many ways
            case["error"] = type(exc).__name__
        cases.append(case)
    return cases


def random_grid(rng):
    config = {}
    for key in rng.sample(["x", "y", "z", "w"], rng.choice([0, 1, 1, 2, 3])):
        roll = rng.random()
        if roll < 0.4:
            config[key] = rng.choice([1, 2, "s", None, True, 0.5])
        elif roll < 0.75:
            config[key] = rng.sample([1, 2, 3, 4], rng.choice([1, 2, 2, 3]))
        elif roll < 0.85:
            config[key] = [[rng.choice([1, 2])]]
        elif roll < 0.95:
            config[key] = [{"a": rng.choice([1, 2])}, {"a": [3, 4]}][: rng.choice([1, 2])]
        else:
            config[key] = {"n": rng.sample([1, 2, 3], 2)}
    if rng.random() < 0.15:
        config["_ig"] = rng.choice([1, 2])
    return config


def random_flow(rng):
    specs, reducers = [], 0
    for j in range(rng.choice([2, 3, 3, 4, 4, 5])):
        name = "ABCDEFG"[j]
        preds = rng.sample(range(j), min(j, rng.choice([0, 1, 1, 2, 2])))
        if j and not preds and rng.random() < 0.7:
            preds = [rng.randrange(j)]
        spec = {"name": name, "requires": ["ABCDEFG"[p] for p in preds], "ip": "_"}
        if preds and reducers == 0 and rng.random() < 0.25:
            reducers += 1
            spec["reduce"] = True
            if rng.random() < 0.3:
                spec["config"] = {"r": 1}
        else:
            spec["config"] = random_grid(rng)
            spec["expand"] = rng.choice(["product", "product", "zip", None])
        specs.append(spec)
    listed = [s["name"] for s in specs]
    if rng.random() < 0.3:
        rng.shuffle(listed)
    return {"specs": specs, "listed": listed}


def flow_cases(rng, count):
    cases = []
    for _ in range(count):
        case = random_flow(rng)
        try:
            flow = build_flow(case, TaskSpec, Flow)
            case["tasks"] = [
                {
                    "unique_name": task.unique_name,
                    "name": task.name,
                    "config": json.loads(json.dumps(task.config)),
                    "unique_config": json.loads(json.dumps(task.unique_config)),
                    "predecessors": list(dict.fromkeys(p.unique_name for p in task.predecessors)),
                }
                for task in (data["task"] for _, data in flow.task_graph.nodes(data=True))
            ]
            case["spec_nodes"] = list(flow.task_spec_graph.nodes)
        except Exception as exc:  # noqa: BLE001
            case["error"] = type(exc).__name__
        cases.append(case)
    return cases


def hash_cases(rng, count):
    cases = []
    for i in range(count):
        config = {k: v for k, v in random_grid(rng).items() if v is not None and k != "_ig"}
        spec = TaskSpec(task=noop, name=f"T{i}", config=config)
        store = InMemoryStore()
        Flow([spec]).run(results_store=store, run_name="golden")
        unique_config = {f"T{i}": json.loads(json.dumps(config))}
        info = store.load("fluidml_info", f"T{i}", unique_config)
        cases.append({"unique_config": unique_config, "hash": info["unique_config_hash"]})
    return cases


def main():
    rng = random.Random(20261125)
    (HERE / "expansion.json").write_text(json.dumps(expansion_cases(rng, 500)))
    (HERE / "flows.json").write_text(json.dumps(flow_cases(rng, 150)))
    (HERE / "hashes.json").write_text(json.dumps(hash_cases(rng, 20)))


if __name__ == "__main__":
    main()
