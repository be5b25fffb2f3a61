"""The code's seams hold: one op spec that every backend and the custom ops agree with, one staleness rule that
every weight cache follows (in-place updates and ``p.data = ...``), and no import cycles in the package."""

import ast
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import alnet_fast
import alnet_fast.ops
from alnet_fast.backends import OP_NAMES, get_backend
from alnet_fast.backends.spec import OP_SPECS, out_shape
from alnet_fast.backends.torch_ops import TORCH_OPS

from test_ops_surface import OP_CALLS, available_backends

PACKAGE = Path(alnet_fast.__file__).resolve().parent


def test_the_spec_names_the_table():
    assert tuple(OP_SPECS) == OP_NAMES


@pytest.mark.parametrize("op", OP_NAMES)
def test_every_backend_and_the_fake_allocate_the_spec_shape(op):
    args, kwargs = OP_CALLS[op]()
    spec_args = args + tuple(kwargs.values())
    expected = out_shape(op, *spec_args)
    for name in available_backends():
        assert tuple(getattr(get_backend(name, args[0].device), op)(*args, **kwargs).shape) == expected, name
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fakes = tuple(mode.from_tensor(a) for a in args)
        assert tuple(getattr(alnet_fast.ops, op)(*fakes, **kwargs).shape) == expected


def _conv_weights(device):
    return torch.randn(16, 8, 3, 3, device=device), torch.randn(16, device=device)


@pytest.mark.parametrize("update", ["in_place", "data_assignment"])
def test_every_backend_sees_weight_updates(update):
    """Backends cache packed weights (native, triton); each must notice both kinds of update."""
    names = available_backends()
    assert {"torch", "native", "triton"} <= set(names) or torch.cuda.is_available()
    for name in names:
        ops = get_backend(name, "cpu" if not torch.cuda.is_available() else "cuda")
        x = torch.randn(1, 8, 6, 7)
        weight, bias = _conv_weights(x.device)
        ops.conv3x3_bias_relu(x, weight, bias)  # packs and caches
        if update == "in_place":
            with torch.no_grad():
                weight.mul_(-2)
                bias.add_(1)
        else:
            weight.data = -2 * weight.data
            bias.data = bias.data + 1
        # fp32, K = 72 terms: only the accumulation order differs from torch's
        expected = TORCH_OPS.conv3x3_bias_relu(x, weight, bias)
        assert torch.allclose(ops.conv3x3_bias_relu(x, weight, bias), expected, rtol=1e-5, atol=1e-5), name


def _without_type_checking(tree: ast.Module) -> ast.Module:
    tree.body = [n for n in tree.body if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))]
    return tree


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """Modules of the package that ``module`` imports anywhere: at module level or inside a function (a lazy
    import that dodges a cycle is still a cycle). Only ``if TYPE_CHECKING:`` blocks are left out."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(_without_type_checking(ast.parse(path.read_text()))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {name for name in found if name in modules and name != module}


def test_no_import_cycles():
    paths = {(_module_name(p)): p for p in PACKAGE.rglob("*.py")}
    graph = {m: _imports(p, m, set(paths)) for m, p in paths.items()}
    for m in graph:  # importing a.b.c imports a.b first: a package's own imports are not a cycle through it
        graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert len(graph) > 30  # the walk saw the package
