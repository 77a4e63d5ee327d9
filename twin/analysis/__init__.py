"""Like-to-like and invariance connectivity tests on a connectome x functional profiles.

``analyze(config, out_dir)`` (``twin analyze CONFIG --out DIR``) builds the edge table with
:func:`twin.connectome.build_edge_table` and writes ``edges.parquet``, ``binned.parquet`` and
``results.json`` (one record per test). Modules, one idea each:

    config       AnalysisConfig (TOML: experiments/analyze/*.toml)
    fe_poisson   Poisson regression with per-presynaptic-neuron intercepts, clustered errors,
                 within-neuron permutation test
    scales       synaptic-scale (Poisson) and axonal-scale (Tweedie) slopes per projection
    inclusion    quality filter and the published inclusion rules; tested groups
    paired       per-neuron connected-vs-ADP means (paired t), synapse size vs similarity (OLS)
    binned       binned trends with bootstrap intervals over presynaptic neurons
    invariance   MEI/VEI similarity, post vs pre invariance, invariance vs out-degree
    glmm_r       the published glmmTMB GLMM through Rscript, when installed
    records      test records and Benjamini-Hochberg adjustment
    synthetic    edge tables with planted effects (tests, calibration)
    run          analyze(): orchestration and atomic writes
"""

from twin.analysis.config import AnalysisConfig, load_analysis_config

__all__ = ["AnalysisConfig", "load_analysis_config", "analyze"]


def __getattr__(name: str):
    # analyze pulls in pandas/statsmodels: imported on first use so `twin --help` stays fast
    if name == "analyze":
        from twin.analysis.run import analyze

        return analyze
    raise AttributeError(f"module 'twin.analysis' has no attribute {name!r}")
