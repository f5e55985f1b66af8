"""reelfarm's Triton kernels, installed under the import name `reelfarm_kernels`.

    <op>.py       <op>_reference (plain torch) and the launcher <op>() that checks its
                  arguments and runs the kernel where Triton can, else the reference
    jit/<op>.py   the @triton.jit kernel, imported by the launcher only when it launches

The code lives in kernels/reelfarm_kernels/ and installs as `reelfarm_kernels`: `kernels`
is Hugging Face's kernel hub package, which transformers imports. kernels/ has no
__init__.py, so with the repository root on sys.path (pytest, `python -m`, Ray workers
that inherit the driver's directory) it is at most a namespace portion, and the installed
regular package wins (tests/unit/test_import_names.py). This file stays free of imports
(in particular triton), so importing a launcher costs nothing where Triton is absent.
"""
