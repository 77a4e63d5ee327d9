"""The published GLMM through R's glmmTMB, when ``Rscript`` and glmmTMB are installed.

    n_synapses ~ 0 + projection + projection:x + offset(log(ld_um)) + (1 | pre:projection)

(Poisson; the same fit as n_synapses ~ x * projection, parameterised so that each projection's
slope is one coefficient). Pairs with Ld > 0 of the included projections go to R as CSV, R writes
JSON (no R package beyond glmmTMB is needed); Wald intervals from the reported standard errors.
Records: family "synaptic_scale_glmm", beside the Python estimates.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.analysis.records import record
from twin.errors import TwinError

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(glmmTMB))
d <- read.csv(args[1], stringsAsFactors = FALSE)
d$projection <- factor(d$projection)
d$grp <- interaction(d$pre, d$projection, drop = TRUE)
out <- character(0)
esc <- function(s) gsub('"', "'", gsub("\\\\", "/", s))
for (m in strsplit(args[3], ",")[[1]]) {
  dd <- d[is.finite(d[[m]]), ]
  dd$x <- dd[[m]]
  fit <- tryCatch(glmmTMB(n_synapses ~ 0 + projection + projection:x + offset(log(ld_um)) + (1 | grp),
                          family = poisson, data = dd), error = function(e) e)
  if (inherits(fit, "error")) {
    out <- c(out, sprintf('{"measure":"%s","error":"%s"}', m, esc(conditionMessage(fit))))
    next
  }
  co <- summary(fit)$coefficients$cond
  for (r in grep(":x$", rownames(co), value = TRUE)) {
    proj <- sub("^projection", "", sub(":x$", "", r))
    out <- c(out, sprintf('{"measure":"%s","projection":"%s","estimate":%.12g,"se":%.12g,"p":%.12g}',
                          m, proj, co[r, 1], co[r, 2], co[r, 4]))
  }
}
writeLines(paste0("[", paste(out, collapse = ","), "]"), args[2])
"""


def r_available(timeout: float = 60.0) -> bool:
    """True when ``Rscript`` is on PATH and can load glmmTMB."""
    exe = shutil.which("Rscript")
    if exe is None:
        return False
    try:
        r = subprocess.run([exe, "-e", 'quit(status = if (requireNamespace("glmmTMB", quietly = TRUE)) 0 else 1)'],
                           capture_output=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


def fit_glmm_r(edges: pd.DataFrame, measures: list[str], projections: dict[str, list[str]],
               timeout: float = 3600.0) -> list[dict[str, Any]]:
    """Fit the published GLMM in R for each measure over its included ``projections``
    ({measure: [projection, ...]}), on pairs with Ld > 0. Returns "synaptic_scale_glmm" records.
    Raises TwinError when R fails."""
    exe = shutil.which("Rscript")
    if exe is None:
        raise TwinError("analyze: use_r: Rscript is not on PATH")
    ld = edges["ld_um"].to_numpy(np.float64)
    keep = (ld > 0) & edges["projection"].isin(sorted({p for ps in projections.values() for p in ps})).to_numpy()
    cols = ["pre_pt_root_id", "projection", "n_synapses", "ld_um", *measures]
    d = edges.loc[keep, cols].rename(columns={"pre_pt_root_id": "pre"})
    with tempfile.TemporaryDirectory(prefix="twin-glmm-") as tmp:
        tmp = Path(tmp)
        (tmp / "glmm.R").write_text(R_SCRIPT)
        d.to_csv(tmp / "pairs.csv", index=False)
        try:
            r = subprocess.run([exe, str(tmp / "glmm.R"), str(tmp / "pairs.csv"), str(tmp / "out.json"),
                                ",".join(measures)], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TwinError(f"analyze: glmmTMB did not finish within {timeout:.0f} s") from None
        if r.returncode != 0 or not (tmp / "out.json").is_file():
            last = (r.stderr or r.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise TwinError(f"analyze: Rscript/glmmTMB failed: {last[0]}")
        rows = json.loads((tmp / "out.json").read_text())
    out = []
    for row in rows:
        m, proj = row.get("measure"), row.get("projection")
        if "error" in row or proj not in projections.get(m, []):
            continue
        sel = keep & (edges["projection"].to_numpy() == proj) & np.isfinite(edges[m].to_numpy(np.float64))
        est, se = float(row["estimate"]), float(row["se"])
        out.append(record("synaptic_scale_glmm", m, proj, estimate=est, ci_low=est - 1.959964 * se,
                          ci_high=est + 1.959964 * se, p=float(row["p"]), se=se, level="projection",
                          n_pre=int(edges.loc[sel & (edges["n_synapses"].to_numpy() > 0), "pre_pt_root_id"].nunique()),
                          n_pairs=int(sel.sum()), n_synapses=int(edges.loc[sel, "n_synapses"].sum()),
                          method="glmmTMB poisson, (1 | pre:projection)"))
    return out


__all__ = ["r_available", "fit_glmm_r", "R_SCRIPT"]
