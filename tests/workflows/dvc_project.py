"""A small DVC project of our own making (foreach, matrix, vars, file-qualified params, metrics, plots,
artifacts, a DVC-tracked input), written the same way for ``workbench repro`` and for real ``dvc``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

DVC_YAML = """\
vars:
  - config.json
  - greeting: hello
stages:
  prepare:
    cmd: PY prepare.py data/data.xml ${prepare.split}
    deps: [prepare.py, data/data.xml]
    params: [prepare.split]
    outs: [prepared/data.txt]
  featurize:
    foreach: ${langs}
    do:
      cmd: PY featurize.py ${item} ${greeting} > features/${item}.${suffix}
      deps: [featurize.py, prepared/data.txt]
      outs:
        - features/${item}.${suffix}
  train:
    cmd:
      - PY train.py
      - echo trained >> train.log
    deps: [train.py, features/en.txt, features/fr.txt]
    params:
      - train
      - other.yaml:
          - model.depth
    outs:
      - model.pkl
      - train.log:
          cache: false
    metrics:
      - metrics.json:
          cache: false
    plots:
      - plots/loss.csv:
          x: step
          y: loss
  report:
    matrix:
      kind: [short, long]
      n: [1, 2]
    cmd: PY report.py ${item.kind} ${item.n}
    deps: [report.py, model.pkl]
    outs:
      - reports/${item.kind}-${item.n}.txt
metrics:
  - metrics.json
plots:
  - plots/loss.csv:
      x: step
      y: loss
artifacts:
  clf:
    path: model.pkl
    type: model
    desc: the classifier
"""

SCRIPTS = {
    "prepare.py": ("import os, sys\nos.makedirs('prepared', exist_ok=True)\n"
                   "text = open(sys.argv[1]).read()\n"
                   "open('prepared/data.txt', 'w').write(text.upper() + sys.argv[2] + '\\n')\n"),
    "featurize.py": ("import sys\ntext = open('prepared/data.txt').read()\n"
                     "print(sys.argv[2], sys.argv[1], len(text))\n"),
    "train.py": ("import json, os, yaml\np = yaml.safe_load(open('params.yaml'))['train']\n"
                 "depth = yaml.safe_load(open('other.yaml'))['model']['depth']\n"
                 "feats = open('features/en.txt').read() + open('features/fr.txt').read()\n"
                 "open('model.pkl', 'w').write(json.dumps({'depth': depth, 'lr': p['lr'], 'f': feats}))\n"
                 "json.dump({'acc': 0.5 + depth / 100, 'eval': {'f1': p['lr'] * 2, 'name': 'x'}},"
                 " open('metrics.json', 'w'))\n"
                 "os.makedirs('plots', exist_ok=True)\n"
                 "open('plots/loss.csv', 'w').write('step,loss\\n' + ''.join(f'{i},{1 / (i + 1)}\\n'"
                 " for i in range(p['epochs'])))\n"),
    "report.py": ("import os, sys\nos.makedirs('reports', exist_ok=True)\nm = open('model.pkl').read()\n"
                  "open(f'reports/{sys.argv[1]}-{sys.argv[2]}.txt', 'w')"
                  ".write(m[: 10 * int(sys.argv[2])] if sys.argv[1] == 'short' else m)\n"),
}


def write_dvc_project(root: Path) -> None:
    """The project's files (the same bytes for both tools); commands run this test's Python."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "features").mkdir(exist_ok=True)
    (root / "data" / "data.xml").write_text("<rows><row>a</row><row>b</row></rows>\n")
    (root / "params.yaml").write_text("prepare:\n  split: 0.25\ntrain:\n  epochs: 3\n  lr: 0.1\n"
                                      "langs: [en, fr]\n")
    (root / "other.yaml").write_text("model:\n  depth: 2\n  unused: 7\n")
    (root / "config.json").write_text(json.dumps({"suffix": "txt"}))
    (root / "dvc.yaml").write_text(DVC_YAML.replace("PY ", f"{sys.executable} "))
    for name, text in SCRIPTS.items():
        (root / name).write_text(text)


ALL_STAGES = {"prepare", "featurize@en", "featurize@fr", "train", "report@short-1", "report@short-2",
              "report@long-1", "report@long-2"}
OUTPUTS = ["prepared/data.txt", "features/en.txt", "features/fr.txt", "model.pkl", "train.log",
           "metrics.json", "plots/loss.csv", "reports/short-1.txt", "reports/short-2.txt",
           "reports/long-1.txt", "reports/long-2.txt"]
