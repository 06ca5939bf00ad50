"""Learning-quality experiments on real benchmarks: `python -m research.experiments --bench nuaa` (or a benchmark folder).

One fixed subject-disjoint split per benchmark (training.split, seed 0) is shared by every run.
Each run is a `training.fit` run (python API, so an arm can set any configuration field);
its ONNX model is then scored on the test recordings against truth.csv (every known label), at the
fitted temperatures and at T = 1. Per run, OUT/<bench>/runs/<run id>.json holds that summary;
runs whose summary exists are skipped, so an interrupted grid continues where it stopped.
`doc.write_doc` turns the summaries into a full report (tables, plots, commands, wall times); the published
tables of docs/results.md come from the compact evidence files instead (`research.tables`).

Modules: `arms` (benchmarks, settings, the arms and the grid), `runner` (split, FitConfig per arm,
training, truth.csv scoring), `bn_check` (BatchNorm statistics check of saved checkpoints),
`summaries` (loading and grouping run summaries), `tables` and `plots` (report sections),
`doc` (the whole generated part), `__main__` (the CLI);
`step_check` and `run_inputs` (each S4L step rescored from its checkpoints), `machines` and `inputs_compare`
(paired tests over seeds: S4L against supervised, pooled over CPU types; one input of a benchmark against another).

Arms (see `arms.ARMS`): "supervised" = supervised cross-entropy only (no VAT / EntMin / rotation /
pseudo-labels), run as recipe step 3 alone with step 1's learning rate and as many epochs as the
three S4L steps together; "s4l" = steps 1, 2, 3; `arms.S4L_ARMS` = s4l with one change (ablations,
probes). Model variants (nuaa): STL, single-image, and mean instead of concatenated frame fusion.
"""
