"""The import graph keeps its floors (tests/import_graph.py): no arrow back up, no cycle, every module placed."""

import import_graph


def test_the_package_keeps_its_floors():
    edges = import_graph.graph()
    assert "keras_disentangle.data" in edges and "tfrecords.build" in edges
    assert import_graph.problems(edges) == []


def test_an_arrow_back_up_and_a_cycle_are_reported():
    data, runtime = "keras_disentangle.data", "keras_disentangle.serving.runtime"
    edges = {data: {runtime}, runtime: {data}, "keras_disentangle.somewhere_new": set()}
    found = import_graph.problems(edges)
    assert f"{data} (data) imports {runtime} (serving): an arrow back up" in found
    assert f"import cycle: {data} -> {runtime} -> {data}" in found
    assert "keras_disentangle.somewhere_new: no floor names it (add it to FLOORS)" in found


def test_no_module_over_400_lines():
    # STYLE.md: a module past ~400 lines is split by responsibility (issue 27).
    long = {name: count for name, file in import_graph.modules().items()
            if (count := len(file.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}, f"modules over 400 lines (split them by responsibility): {long}"
