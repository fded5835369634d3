"""Specs, their contracts, the open registry, and DynamicNet's paths, eager and scripted."""

import pytest
import torch
from torch import nn

from torchship.errors import SpecError
from torchship.export.contract import check_inputs, check_outputs, flatten_outputs, normalize_feed
from torchship.export.schema_check import check_contract
from torchship.models import (BATCH, Axis, InputSpec, ModelSpec, OutputSpec, entries, get_spec, load_spec_ref,
                              register, seeds)
from torchship.models.cli import expand_names
from torchship.models.nets import DynamicNet
from tests.conftest import SEEDS


@pytest.mark.parametrize("name", SEEDS)
@pytest.mark.parametrize("batch", [1, 5])
def test_spec_inputs_and_outputs_match_the_model(name, batch):
    spec = get_spec(name)
    contract = spec.contract()
    inputs = spec.example_inputs({"batch": batch}, torch.Generator().manual_seed(0))
    assert list(inputs) == [i.name for i in spec.inputs]
    for input_spec in spec.inputs:
        value = inputs[input_spec.name]
        if input_spec.kind == "int":
            assert type(value) is int and value == input_spec.low  # scalars default to their low
        else:
            assert value.dtype == getattr(torch, input_spec.dtype)
            assert list(value.shape) == [batch if d == "batch" else d for d in input_spec.shape]
    sizes = check_inputs(contract, normalize_feed(contract, inputs))
    assert sizes == {"batch": batch}
    with torch.no_grad():
        outputs = flatten_outputs(contract, spec.build().eval()(**inputs))
    assert list(outputs) == [o.name for o in spec.outputs]
    check_outputs(contract, outputs, sizes)
    assert all(o.dtype == torch.float32 and o.shape[0] == batch for o in outputs.values())


def test_example_inputs_take_scalars_by_name_and_follow_the_generator():
    spec = get_spec("dynamicnet")
    first = spec.example_inputs({"batch": 3}, torch.Generator().manual_seed(4), depth=2)
    again = spec.example_inputs({"batch": 3}, torch.Generator().manual_seed(4), depth=2)
    other = spec.example_inputs({"batch": 3}, torch.Generator().manual_seed(5), depth=2)
    assert first["depth"] == 2 and torch.equal(first["x"], again["x"]) and not torch.equal(first["x"], other["x"])
    assert spec.inputs[1].scalar_values() == (0, 1, 2, 3)


def test_seed_contracts_follow_the_schema_and_the_rules_example():
    for name in SEEDS:
        contract = get_spec(name).contract()
        check_contract(contract, name, "fix the spec")
        assert contract["contract_version"] == 2 and contract["model"] == name
    dynamicnet = get_spec("dynamicnet").contract()
    assert {k: v for k, v in dynamicnet.items() if k not in ("summary", "control_flow")} == {
        "contract_version": 2, "model": "dynamicnet",
        "inputs": [{"name": "x", "kind": "tensor", "dtype": "float32", "shape": ["batch", 1000]},
                   {"name": "depth", "kind": "int", "low": 0, "high": 3, "optional": True}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 10]}], "output_structure": "tensor",
        "axes": {"batch": {"min": 1, "max": 262144}}, "tolerance": {"atol": 1e-05, "rtol": 0.0001}}
    assert get_spec("convnet").contract()["axes"] == {"batch": {"min": 1, "max": 16384}}
    assert get_spec("convnet").contract()["outputs"] == [
        {"name": "logits", "dtype": "float32", "shape": ["batch", 10], "role": "logits"}]


def test_dynamic_axis_sizes_avoid_the_export_size():
    axis = get_spec("twolayernet").axes[BATCH]
    assert axis.export_size() == 2
    assert axis.golden_sizes() == (1, 7, 256) and axis.fresh_sizes() == (3, 33, 300)
    narrow = Axis(min=4, max=40)
    assert narrow.export_size() == 4 and narrow.golden_sizes() == (4, 7, 40) and narrow.fresh_sizes() == (4, 33, 40)
    assert Axis(min=0, max=1).export_size() == 1
    assert Axis(golden=(9,), fresh=(11, 12)).golden_sizes() == (9,)


def test_only_dynamicnet_declares_control_flow():
    assert [n for n in SEEDS if get_spec(n).control_flow] == ["dynamicnet"]


# --- the registry ------------------------------------------------------------------------------

def test_the_seed_models_join_through_their_entry_points():
    known = entries()
    assert set(SEEDS) <= set(known)
    for name, spec in zip(SEEDS, (seeds.TWOLAYERNET, seeds.DYNAMICNET, seeds.CONVNET)):
        assert known[name].spec is spec and get_spec(name) is spec
        assert known[name].origin.startswith(f"entry point {name} = torchship.models.seeds:{name.upper()} (torchship ")


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(SpecError) as refused:
        get_spec("resnet")
    assert refused.value.message == (
        f"unknown model 'resnet'; known models: {', '.join(entries())}; "
        "register yours with --spec module:attr or a torchship.models entry point")
    assert set(SEEDS) <= set(entries())


def _tiny(name="mine", **changes) -> ModelSpec:
    fields = dict(name=name, summary="Linear(4, 3)", build=lambda: nn.Linear(4, 3),
                  inputs=(InputSpec("x", shape=(BATCH, 4)),), outputs=(OutputSpec("y", shape=(BATCH, 3)),))
    fields.update(changes)
    return ModelSpec(**fields)


def test_register_adds_a_model_once():
    spec = _tiny()
    assert register(spec) is spec
    assert get_spec("mine") is spec and entries()["mine"].origin == "register()"
    assert register(spec, origin="again") is spec  # the same spec again is no clash
    assert entries()["mine"].origin == "register()"


def test_a_clash_is_one_line_naming_both_origins():
    seed_origin = entries()["twolayernet"].origin
    with pytest.raises(SpecError) as refused:
        register(_tiny("twolayernet"), origin="my notebook")
    assert refused.value.message == (f"model 'twolayernet' from my notebook clashes with the one from {seed_origin}; "
                                     "rename one of them")
    assert get_spec("twolayernet") is seeds.TWOLAYERNET


def test_registering_something_else_is_refused():
    with pytest.raises(SpecError, match=r"^register\(\): expected a torchship ModelSpec, got dict$"):
        register({"name": "mine"})


DTYPES = "float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool"
BAD_FIELDS = [
    (dict(name="has space"), "model spec 'has space': name: expected letters, digits, '_' or '.', got 'has space'"),
    (dict(build=None), "model spec 'mine': build: expected a callable returning an nn.Module, got NoneType"),
    (dict(inputs=()), "model spec 'mine': inputs: expected a non-empty tuple of InputSpec"),
    (dict(outputs=("y",)), "model spec 'mine': outputs: expected a non-empty tuple of OutputSpec"),
    (dict(inputs=(InputSpec("x", dtype="float99", shape=(BATCH, 4)),)),
     f"model spec 'mine': inputs.x.dtype: expected one of {DTYPES}, got 'float99'"),
    (dict(inputs=(InputSpec("x", shape=("seq", 4)),)),
     "model spec 'mine': inputs.x.shape: axis 'seq' is not in axes (batch)"),
    (dict(outputs=(OutputSpec("y", shape=(BATCH, -3)),)),
     "model spec 'mine': outputs.y.shape: expected sizes or axis names, got -3"),
    (dict(inputs=(InputSpec("x", kind="string"),)),
     "model spec 'mine': inputs.x.kind: expected one of tensor, int, float, bool, got 'string'"),
    (dict(inputs=(InputSpec("x", shape=(BATCH, 4)), InputSpec("x", kind="int"))),
     "model spec 'mine': inputs: names must be unique, got ['x', 'x']"),
    (dict(output_structure="set"), "model spec 'mine': output_structure: expected one of tensor, tuple, list, dict, "
                                   "got 'set'"),
    (dict(outputs=(OutputSpec("y"), OutputSpec("z"))),
     "model spec 'mine': output_structure: 'tensor' returns one output, but 2 are named"),
    (dict(axes={BATCH: Axis(min=5, max=2)}),
     "model spec 'mine': axes.batch: expected Axis(min <= max), got Axis(min=5, max=2, golden=(), fresh=())"),
    (dict(recipe="sgd"), "model spec 'mine': recipe: expected a Recipe or None, got str"),
]


@pytest.mark.parametrize("changes, message", BAD_FIELDS, ids=[m.split(": ")[1] for _, m in BAD_FIELDS])
def test_a_bad_spec_field_is_one_line_naming_the_spec_and_field(changes, message):
    with pytest.raises(SpecError) as refused:
        _tiny(**changes)
    assert refused.value.message == message and "\n" not in message


def test_spec_refs_register_from_a_file_or_a_module(user_models):
    from_file = load_spec_ref(f"{user_models}:TINY")
    assert [s.name for s in from_file] == ["tiny"]
    assert entries()["tiny"].origin == f"--spec {user_models}:TINY"
    assert load_spec_ref(f"{user_models}:TINY") == from_file  # the same file twice: the same spec
    assert get_spec("tiny") is from_file[0]


def test_spec_refs_register_from_a_module_a_list_or_a_callable(user_models):
    from_module = load_spec_ref("user_models:make_both")  # a callable returning a list
    assert [s.name for s in from_module] == ["tiny", "tagger"]
    assert entries()["tagger"].origin == "--spec user_models:make_both"
    assert load_spec_ref("user_models:BOTH") == from_module  # the same objects: no clash


def test_the_same_name_from_two_places_clashes(user_models):
    load_spec_ref("user_models:TINY")
    with pytest.raises(SpecError) as refused:
        load_spec_ref(f"{user_models}:TINY")
    assert refused.value.message == (f"model 'tiny' from --spec {user_models}:TINY clashes with the one from "
                                     "--spec user_models:TINY; rename one of them")


def test_bad_spec_refs_are_one_line_each(user_models, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_package_here\n")
    failing = tmp_path / "failing.py"
    failing.write_text("def specs():\n    raise RuntimeError('no GPU to build on')\n")
    cases = [
        ("user_models", "--spec 'user_models': expected module:attr or path/to/file.py:NAME"),
        (f"{tmp_path}/nowhere.py:X", f"--spec {tmp_path}/nowhere.py:X: no file {tmp_path}/nowhere.py"),
        ("user_models:NOPE", "--spec user_models:NOPE: user_models has no attribute 'NOPE'"),
        ("no_such_module_here:X", "--spec no_such_module_here:X failed to import: ModuleNotFoundError: "
                                  "No module named 'no_such_module_here'"),
        (f"{broken}:X", f"--spec {broken}:X failed to import: ModuleNotFoundError: "
                        "No module named 'no_such_package_here'"),
        (f"{failing}:specs", f"--spec {failing}:specs: calling it failed: RuntimeError: no GPU to build on"),
        # a class is a callable too: calling it builds a module, which is not a spec
        ("user_models:Tiny", "--spec user_models:Tiny: expected a torchship ModelSpec, got Tiny"),
        ("user_models:collections", "--spec user_models:collections: expected a torchship ModelSpec, got module"),
    ]
    for ref, message in cases:
        with pytest.raises(SpecError) as refused:
            load_spec_ref(ref)
        assert refused.value.message == message, ref


def test_a_file_whose_spec_is_malformed_names_the_spec_and_field(tmp_path):
    bad = tmp_path / "bad_spec.py"
    bad.write_text("from torch import nn\n"
                   "from torchship.models import BATCH, InputSpec, ModelSpec, OutputSpec\n"
                   "BAD = ModelSpec(name='bad', summary='', build=nn.Identity,\n"
                   "                inputs=(InputSpec('x', dtype='float99', shape=(BATCH,)),),\n"
                   "                outputs=(OutputSpec('y', shape=(BATCH,)),))\n")
    with pytest.raises(SpecError) as refused:
        load_spec_ref(f"{bad}:BAD")
    assert refused.value.message == f"model spec 'bad': inputs.x.dtype: expected one of {DTYPES}, got 'float99'"


def test_a_file_that_failed_to_load_fails_the_same_way_again(tmp_path):
    bad = tmp_path / "raises.py"
    bad.write_text("raise ValueError('a typo in the user file')\nSPEC = None\n")
    messages = []
    for _ in range(2):
        with pytest.raises(SpecError) as refused:
            load_spec_ref(f"{bad}:SPEC")
        messages.append(refused.value.message)
    assert messages[0] == f"--spec {bad}:SPEC failed to import: ValueError: a typo in the user file"
    assert messages[1] == messages[0]


def test_all_means_every_registered_model_or_every_trainable_one(user_models):
    load_spec_ref("user_models:BOTH")
    assert expand_names(("all",)) == list(entries())
    assert set(expand_names(("all",))) >= {*SEEDS, "tiny", "tagger"}
    assert set(expand_names(("all",), trainable=True)) == {n for n, e in entries().items() if e.spec.recipe}
    assert "tiny" not in expand_names(("all",), trainable=True)
    assert expand_names(("convnet", "tiny", "convnet")) == ["convnet", "tiny"]
    with pytest.raises(SpecError, match="^unknown model 'resnet'"):
        expand_names(("all", "resnet"))


def test_user_spec_with_several_axes_and_a_dict_output(user_models):
    (tagger,) = [s for s in load_spec_ref("user_models:BOTH") if s.name == "tagger"]
    contract = tagger.contract()
    check_contract(contract, "tagger", "fix it")
    inputs = tagger.example_inputs({"batch": 3, "seq": 5}, torch.Generator().manual_seed(0))
    assert inputs["ids"].dtype == torch.int64 and inputs["ids"].shape == (3, 5)
    assert 0 <= int(inputs["ids"].min()) and int(inputs["ids"].max()) <= 19
    assert inputs["mask"].dtype == torch.bool
    sizes = check_inputs(contract, normalize_feed(contract, inputs))
    assert sizes == {"batch": 3, "seq": 5}
    outputs = flatten_outputs(contract, tagger.build()(**inputs))  # a named tuple, read as a dict
    check_outputs(contract, outputs, sizes)
    assert list(outputs) == ["pooled", "per_token"] and outputs["per_token"].shape == (3, 5)
    assert tagger.export_sizes() == {"batch": 2, "seq": 2}


# --- DynamicNet's paths ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dynamicnet():
    torch.manual_seed(0)
    return DynamicNet().eval()


def _by_depth(model, x):
    with torch.no_grad():
        return [model(x, depth) for depth in range(4)]


def test_dynamicnet_each_depth_takes_its_own_path(dynamicnet):
    outputs = _by_depth(dynamicnet, torch.randn(3, 1000))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(outputs[i], outputs[j]), f"depth {i} and {j} agree"


def test_dynamicnet_random_default_draws_every_depth_and_follows_the_seed(dynamicnet):
    x = torch.randn(2, 1000)
    by_depth = _by_depth(dynamicnet, x)

    def drawn_depths(seed):
        torch.manual_seed(seed)
        depths = []
        with torch.no_grad():
            for _ in range(40):
                out = dynamicnet(x)
                depths.append(next(d for d, ref in enumerate(by_depth) if torch.equal(out, ref)))
        return depths

    first = drawn_depths(7)
    assert set(first) == {0, 1, 2, 3}
    assert drawn_depths(7) == first


def test_dynamicnet_scripts_as_written_and_keeps_its_loop(dynamicnet):
    scripted = torch.jit.script(dynamicnet)
    assert "prim::Loop" in str(scripted.graph)
    x = torch.randn(4, 1000)
    for depth, expected in enumerate(_by_depth(dynamicnet, x)):
        torch.testing.assert_close(scripted(x, depth), expected, rtol=0, atol=0)
    torch.manual_seed(3)
    eager_draw = dynamicnet(x)
    torch.manual_seed(3)
    torch.testing.assert_close(scripted(x), eager_draw, rtol=0, atol=0)


def test_dynamicnet_while_loop_form_shares_weights_with_forward(dynamicnet):
    x = torch.randn(3, 1000)
    for depth, expected in enumerate(_by_depth(dynamicnet, x)):
        with torch.no_grad():
            got = dynamicnet.forward_for_export(x, torch.tensor(depth))
        torch.testing.assert_close(got, expected)
