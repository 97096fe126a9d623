"""Population scale on Apache Spark: the same contract, features and model, distributed.

Nothing here re-implements the project's logic. Every client's rows are handed,
as pandas frames, to the functions the pandas engine calls:
``features.contract.validate_contract`` (typing and the contract's rules),
``features.landmarks.build_features`` and ``DropoutRiskModel.score_history``.
Spark only moves the rows, via ``groupBy(...).cogroup(...).applyInPandas``.

Groups are client *buckets*, not single clients: the key is a hash of the
(whitespace-stripped) ``client_id``, so every row of a client, in both files,
lands in the same group, and a group holds a few thousand clients. All the
features are per client, so a bucket gives exactly what the whole file gives;
one pandas call per client would cost ~30 ms of fixed overhead each
(validation, then features), hours for a national cohort.

Two things are global and are computed in a first pass (``check``), one
summary row set per bucket, merged on the driver:

- validation: every bucket runs the full contract; problems are counted by
  (file, column, rule) and reported *without row numbers* (a bucket's rows are
  not the file's; run ``dropout-risk validate`` on a file that fits in memory to
  locate them). Values and client ids are never reported.
- for ``features``: the spec (instruments with data, covariate kinds and
  levels) is inferred with ``features.spec.infer_spec`` on a tiny proxy of the
  whole data, and the expected-trajectory curves are fitted from per-bucket
  ``features.trajectories.trajectory_sums`` merged exactly as a parallel
  variance (Chan et al.; ``trajectories``), then ``curve_from_sums`` (tests
  compare both engines' curves to 1e-12).

The second pass (``build``) builds features (or scores) per bucket and Spark
writes Parquet (``jobs``). Inputs: Parquet (typed) or CSV (read as text, as the
pandas engine does; ``session``). Results equal the pandas engine's to 1e-9
(tests/training/test_spark_engine.py).

Modules: ``session`` (the SparkSession, reading files), ``buckets`` (client
buckets and their pandas frames), ``check`` (pass one), ``trajectories``
(merging the curves' sums), ``build`` (pass two), ``inputs`` (``SparkInputs``,
which runs both passes), ``jobs`` (files in, Parquet out).
"""
