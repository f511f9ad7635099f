"""Zero-code capture: typed params from flags, metrics from stdout lines."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

from workbench.tracking.capture import StdoutMetricParser, git_facts, host_facts, params_from_argv


def test_params_from_python_command_flags() -> None:
    argv = ["python", "-u", "train.py", "--lr", "0.1", "--epochs=3", "-b", "32", "--shuffle", "--name",
            "run a", "--no-augment", "--delta", "-1e-3", "--flag=false", "data.csv"]
    assert params_from_argv(argv) == {
        "lr": 0.1, "epochs": 3, "b": 32, "shuffle": True, "name": "run a", "augment": False, "delta": -0.001,
        "flag": False,
    }


def test_params_from_module_and_plain_commands() -> None:
    assert params_from_argv(["python3", "-m", "pkg.train", "--seed", "7"]) == {"seed": 7}
    assert params_from_argv(["./train.sh", "--depth", "4", "--verbose"]) == {"depth": 4, "verbose": True}
    assert params_from_argv(["python", "t.py", "--", "--not-a-param", "1"]) == {}
    assert params_from_argv([]) == {}


def test_stdout_pairs_with_step() -> None:
    parser = StdoutMetricParser()
    assert parser.parse("epoch=3 loss=0.25 acc=0.9") == [("loss", 0.25, 3), ("acc", 0.9, 3)]
    assert parser.parse("Epoch: 2  train_loss: 1.5e-2  val/acc: 87.5%") == [
        ("train_loss", 0.015, 2), ("val/acc", 87.5, 2)]
    assert parser.parse("step 10 | loss: 0.3") == [("loss", 0.3, 10)]  # a step written with a space
    found = parser.parse("loss: nan grad_norm=inf")
    assert math.isnan(found[0][1]) and found[1][1] == math.inf


def test_stdout_json_lines_and_printed_dicts() -> None:
    """Quoted keys: JSON lines, and Python dicts as Hugging Face's Trainer prints its logs (its
    epoch is written as a fraction, 1.0 included: progress, not a step; each key counts its own)."""
    parser = StdoutMetricParser()
    assert parser.parse('{"step": 33, "loss": 0.125, "name": "x", "ok": true}') == [("loss", 0.125, 33)]
    assert parser.parse("{'loss': 2.3, 'grad_norm': 1.5, 'learning_rate': 5e-05, 'epoch': 0.01}") == [
        ("loss", 2.3, None), ("grad_norm", 1.5, None), ("learning_rate", 5e-05, None)]
    assert parser.parse("{'eval_loss': 0.41, 'eval_accuracy': 0.88, 'epoch': 1.0}") == [
        ("eval_loss", 0.41, None), ("eval_accuracy", 0.88, None)]
    assert parser.parse('{"metrics": {"val/acc": 0.9}}') == [("val/acc", 0.9, None)]
    assert parser.parse("'loss\": 1") == []  # quotes that do not pair
    assert parser.parse('{"count": "3"}') == []  # a string is not a value


def test_stdout_lines_of_common_trainers() -> None:
    """XGBoost's rounds, PyTorch's MNIST example, Keras's progress line, Lightning's bar."""
    parser = StdoutMetricParser()
    assert parser.parse("[10]\tvalidation_0-logloss:0.60\tvalidation_1-logloss:0.61") == [
        ("validation_0-logloss", 0.6, 10), ("validation_1-logloss", 0.61, 10)]
    assert parser.parse("Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.305") == [("Loss", 2.305, 1)]
    assert parser.parse("Test set: Average loss: 0.0470, Accuracy: 9846/10000 (98%)") == [
        ("loss", 0.047, None)]
    assert parser.parse("1875/1875 [====] - 3s 1ms/step - loss: 0.2962 - accuracy: 0.9136") == [
        ("loss", 0.2962, None), ("accuracy", 0.9136, None)]
    assert parser.parse("Epoch 0: 100%|##| 1875/1875 [00:10<00:00, 180.00it/s, train_loss=0.123]") == [
        ("train_loss", 0.123, 0)]
    assert parser.parse("Epoch 2: 100%|##| 1875/1875 [00:10<00:00, 180.00it/s]") == []
    assert parser.parse("[2026-12-05 10:00:00] loss=0.5") == [("loss", 0.5, None)]  # a time, no round
    redraws = "".join(f"Epoch 0: {i}%|#| {i}/100 [00:01<00:00, train_loss={1 / (i + 1):.4f}]\r"
                      for i in range(100))  # a bar redrawn 100 times on one line: 7,000 characters
    assert parser.parse(redraws + "Epoch 0: 100%|#| 100/100 [00:02<00:00, train_loss=0.0100]\r") == [
        ("train_loss", 0.01, 0)]


def test_stdout_name_space_value_segments() -> None:
    """nanoGPT's and PyTorch's examples print ``name value`` between commas or bars, the step as
    ``iter 100:`` or ``| epoch 1 |``; a name of several words is joined by ``_``."""
    parser = StdoutMetricParser()
    assert parser.parse("iter 100: loss 1.2345, time 20.00ms, mfu 10.00%") == [
        ("loss", 1.2345, 100), ("time", 20.0, 100), ("mfu", 10.0, 100)]
    assert parser.parse("step 2000: train loss 1.0123, val loss 1.1234") == [
        ("train_loss", 1.0123, 2000), ("val_loss", 1.1234, 2000)]
    assert parser.parse("| epoch   3 |   200/ 2983 batches | lr 20.00 | ms/batch 12.34 | loss  6.80 | "
                        "ppl   900.00") == [("lr", 20.0, 3), ("ms/batch", 12.34, 3), ("loss", 6.8, 3),
                                            ("ppl", 900.0, 3)]
    assert parser.parse("| end of epoch   3 | time: 25.00s | valid loss  5.80 | valid ppl   330.00") == [
        ("valid_loss", 5.8, 3), ("valid_ppl", 330.0, 3)]  # the step's words are not a metric's name
    assert parser.parse("Epoch [1/10], Step [100/600], Loss: 0.2345") == [("Loss", 0.2345, 100)]
    assert parser.parse("Accuracy 0.95, F1 0.93") == [("Accuracy", 0.95, None), ("F1", 0.93, None)]
    # one pair alone, or words around a number, are not enough
    for line in ("batch 20", "Loaded 1000 rows, skipped 3", "Using 4 GPUs", "Epoch 3/10",
                 "Downloading: 100%|#####| 1.2G/1.2G [00:10<00:00, 120MB/s]", "saved to out, 3 files"):
        assert parser.parse(line) == [], line


def test_stdout_lines_that_are_not_metrics() -> None:
    parser = StdoutMetricParser(ignore={"lr"})
    assert parser.parse("Namespace(lr=0.1)") == []
    assert parser.parse("started at 12:30:45 on http://host:8080/x") == []
    assert parser.parse("Downloading data ...") == []
    assert parser.parse("x" * 10_000 + " loss=1") == []
    assert parser.parse("path=/tmp/a.csv count=3") == [("count", 3.0, None)]


def test_library_chatter_is_not_metrics() -> None:
    """What Lightning says on stderr and in its bar: a name in backticks is code, ``v_num`` is the
    logger's version, and on stderr (``strict``) one value alone is not enough."""
    parser = StdoutMetricParser()
    assert parser.parse("`Trainer.fit` stopped: `max_epochs=3` reached.") == []
    assert parser.parse("TPU available: False, using: 0 TPU cores", strict=True) == []
    assert parser.parse("INFO:root:loss=0.5", strict=True) == []
    assert parser.parse("INFO:root:epoch=5 val_acc=0.9", strict=True) == [("val_acc", 0.9, 5)]
    assert parser.parse("INFO:root:loss=0.5 acc=0.8", strict=True) == [
        ("loss", 0.5, None), ("acc", 0.8, None)]
    assert parser.parse("Epoch 1: 100%|##| 5/5 [00:01<00:00, v_num=3, train_loss=0.25]") == [
        ("train_loss", 0.25, 1)]


def test_custom_patterns_replace_the_defaults() -> None:
    parser = StdoutMetricParser([r"\[(?P<step>\d+)\] (?P<name>\w+) is (?P<value>[\d.]+)"])
    assert parser.parse("[5] loss is 0.5") == [("loss", 0.5, 5)]


def test_git_facts_from_one_status_call(tmp_path: Path) -> None:
    assert git_facts(tmp_path) is None and "git" not in host_facts(tmp_path)
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (tmp_path / "a.txt").write_text("1", encoding="utf-8")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout
    (tmp_path / "sub").mkdir()
    (tmp_path / "untracked.txt").write_text("u", encoding="utf-8")
    assert git_facts(tmp_path / "sub") == {"commit": head.strip(), "branch": "main", "dirty": False}
    (tmp_path / "a.txt").write_text("2", encoding="utf-8")
    facts = host_facts(tmp_path)
    assert facts["git"]["dirty"] is True and facts["cpu_count"] >= 1 and facts["hostname"]
    assert facts["memory_total"] > 2**20


def test_wrappers_are_looked_through_not_taken_as_flags() -> None:
    """``sh -c '...'`` has no param ``c``: the inner command's flags are the params."""
    assert params_from_argv(["sh", "-c", "python train.py --lr 0.1"]) == {"lr": 0.1}
    assert params_from_argv(["bash", "-ec", "FOO=1 exec python t.py --lr=0.2 -b 3"]) == {"lr": 0.2, "b": 3}
    assert params_from_argv(["bash", "-o", "pipefail", "--norc", "-c", "python t.py --k v"]) == {"k": "v"}
    assert params_from_argv(["env", "-u", "HOME", "A=x", "python", "t.py", "--lr", "0.3"]) == {"lr": 0.3}
    assert params_from_argv(["sh", "-c", "env CUDA=0 python -m pkg.train --seed 7"]) == {"seed": 7}
    # Not one simple command, or not parseable: nothing, rather than a wrong guess.
    assert params_from_argv(["sh", "-c", "python a.py --x 1 && python b.py --y 2"]) == {}
    assert params_from_argv(["sh", "-c", "python a.py --x 1 > log.txt"]) == {}
    assert params_from_argv(["sh", "-c", "python a.py --x '1"]) == {}
    assert params_from_argv(["sh", "-c"]) == {}
    # A shell running a script file: the script's own flags.
    assert params_from_argv(["bash", "run.sh", "--z", "1"]) == {"z": 1}
