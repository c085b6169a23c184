"""Notebook kernels start with CurveZMQ keys, so none prints the unencrypted-TCP warning.

ipykernel 7.4 logs "Kernel is running over TCP without encryption" to its stderr (which the
kernel shares with the process that started it) whenever it starts without Curve keys; the
grid starts a kernel per run, so the line cut through the progress bar once per run.
The control below starts a kernel the way papermill does by default and must see the
warning, so the test would notice if the warning's wording or channel changed.
"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf
import pytest

import lvae.report.reproduce as rp

WARNING = "without encryption"


def tiny_notebook(path: Path) -> Path:
    """Parameters ``out``; writes whether the kernel holds a Curve secret key to ``out``."""
    nb = nbf.v4.new_notebook(cells=[
        nbf.v4.new_code_cell("out = ''", metadata={"tags": ["parameters"]}),
        nbf.v4.new_code_cell("from ipykernel.kernelapp import IPKernelApp\n"
                             "key = IPKernelApp.instance().curve_secretkey\n"
                             "open(out, 'w').write(str(key is not None))"),
    ])  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbf.write(nb, path)
    return path


def test_the_kernel_manager_asks_for_encryption():
    km = rp.kernel_manager_class()(kernel_name="python3")
    assert km.transport_encryption == "auto"
    assert km._kernel_supports_curve_encryption()  # the installed kernelspec declares curve


def test_executed_notebook_prints_no_tcp_warning(tmp_path: Path, capfd: pytest.CaptureFixture):
    import papermill as pm

    nb = tiny_notebook(tmp_path / "tiny.ipynb")
    control = tmp_path / "control.txt"
    pm.execute_notebook(str(nb), str(tmp_path / "control.ipynb"), kernel_name="python3",
                        parameters={"out": str(control)}, progress_bar=False)
    err = capfd.readouterr().err
    assert WARNING in err and control.read_text() == "False"  # papermill's default manager

    keyed = tmp_path / "keyed.txt"
    o = rp.execute(rp.Task("tiny", str(nb), str(tmp_path / "tiny.out.ipynb"),
                           {"out": str(keyed)}))
    err = capfd.readouterr().err
    assert o.status == "executed", o.message
    assert keyed.read_text() == "True"  # the kernel was given a Curve key pair
    assert WARNING not in err
