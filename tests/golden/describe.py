"""Builds a Flow from a JSON flow description; shared by generate.py (run against the original
fluidml) and test_golden.py (run against this project), which pass in their own classes."""


def noop(task, **kwargs):
    """The task of every spec: the golden files compare graphs, not what tasks do."""


def build_flow(desc, task_spec_cls, flow_cls):
    """``desc``: {"specs": [{"name", "config", "expand", "reduce", "ip", "requires"}], "listed": [...]}."""
    specs = {
        s["name"]: task_spec_cls(task=noop, name=s["name"], config=s.get("config"), expand=s.get("expand"),
                                 reduce=s.get("reduce"), config_ignore_prefix=s.get("ip"))
        for s in desc["specs"]
    }
    for s in desc["specs"]:
        for pred in s["requires"]:
            specs[s["name"]].requires(specs[pred])
    return flow_cls([specs[name] for name in desc["listed"]])
