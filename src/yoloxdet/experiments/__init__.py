"""Research tools built on the library, not part of it: the paper's ablation roadmap (``ablate``, for
``yoloxdet ablate``) and label-assignment pictures (``viz_assign``, for ``yoloxdet assign-viz``)."""
