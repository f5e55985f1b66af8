"""The @triton.jit kernels. Importing anything here imports triton, so only the launchers
in reelfarm_kernels.<op> import these modules, and only when Triton can run.

Every launch passes enable_fp_fusion=False: fused multiply-adds round once where the
torch reference rounds twice, which would break bit-exactness (frame packing) and the
lock-step of windows that must compute identical blended values.
"""
