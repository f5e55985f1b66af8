"""reelfarm's Triton kernels, installed under the import name `reelfarm_kernels`.

The folder is called kernels/ but never importable as `kernels`: that name belongs to
Hugging Face's kernel hub package, which transformers and diffusers probe for. Importing
this package imports nothing (in particular not triton).
"""
