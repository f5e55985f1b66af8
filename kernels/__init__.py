"""reelfarm's Triton kernels, installed under the import name `reelfarm_kernels`.

    <op>.py       <op>_reference (plain torch) and the launcher <op>() that checks its
                  arguments and runs the kernel where Triton can, else the reference
    jit/<op>.py   the @triton.jit kernel, imported by the launcher only when it launches

The folder is called kernels/ but is installed as `reelfarm_kernels`: `kernels` is Hugging
Face's kernel hub package, which transformers and diffusers probe for. From the repository
root (current directory on sys.path) Python can still find this folder as `kernels`;
transformers then imports it to read a version, finds none and reports the hub package
unavailable. So this file stays free of imports (in particular triton) and of a version.
"""
