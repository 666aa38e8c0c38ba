"""Tests of meta-transfer learning: the meta-gradient, the train step, resume, precision, the CLI.

Independent references used here:
- ``_hand_objective``: the reference's meta-objective written out in this file (its own forward,
  L1 loss and SGD with plain ``tf.GradientTape``s, all tasks in one tape), not mzsr_tf's code;
- float64 central finite differences of that objective;
- the reference's own TF1 graph run once under ``tf.compat.v1`` (``tests/golden/reference_meta_step.npz``);
- hand values of the loss-weight formula.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import meta_train
from mzsr_tf.config import MetaTrainConfig, ModelConfig, RunConfig, RuntimeConfig
from mzsr_tf.meta_train import TASK_KEYS, MetaTrainer
from mzsr_tf.model import MZSRNet
from mzsr_tf.training import NonFiniteLossError, ResumeError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = ModelConfig(width=4, depth=3)


def _run(config, model=TINY_MODEL, precision="float32"):
    """The RunConfig of a test run: ``config`` on the tiny network."""
    return RunConfig(model=model, train=config, runtime=RuntimeConfig(precision=precision))


def _tiny_config(**overrides):
    values = dict(patch_size=8, meta_batch_size=2, task_batch_size=2, inner_steps=3, inner_lr=0.1,
                  meta_lr=1e-3, transfer_checkpoint=None, shuffle_buffer=8, print_every=2,
                  save_every=2, meta_iter=4, max_to_keep=3, seed=3)
    values.update(overrides)
    return MetaTrainConfig(**values)


def _random_tasks(meta_batch=2, task_batch=2, size=8, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {k: tf.constant(rng.uniform(0, 1, (meta_batch, task_batch, size, size, 3)).astype(dtype))
            for k in TASK_KEYS}


# --------------------------------------------------------------------------- an independent objective

def _hand_forward(params, x):
    h = x
    n = len(params) // 2
    for i in range(n):
        h = tf.nn.conv2d(h, params[2 * i], 1, "SAME") + params[2 * i + 1]
        if i < n - 1:
            h = tf.nn.relu(h)
    return x + h


def _hand_objective(params, tasks, weights, inner_lr, inner_steps, second_order=True):
    """mean_k(w_k * mean_t L_query(t, k)) with SGD fast weights, written out from the paper.

    ``inner_lr``: one rate for every step, or a list of per-step rates."""
    rates = inner_lr if isinstance(inner_lr, list) else [inner_lr] * inner_steps
    num_tasks = tasks["inputa"].shape[0]
    per_step = [[] for _ in range(inner_steps)]
    for t in range(num_tasks):
        fast = list(params)
        for k in range(inner_steps):
            with tf.GradientTape() as tape:
                tape.watch(fast)
                support = tf.reduce_mean(tf.abs(tasks["labela"][t] - _hand_forward(fast, tasks["inputa"][t])))
            grads = tape.gradient(support, fast)
            if not second_order:
                grads = [tf.stop_gradient(g) for g in grads]
            fast = [w - rates[k] * g for w, g in zip(fast, grads)]
            query = tf.reduce_mean(tf.abs(tasks["labelb"][t] - _hand_forward(fast, tasks["inputb"][t])))
            per_step[k].append(query)
    losses = tf.stack([tf.add_n(q) / num_tasks for q in per_step])
    return tf.reduce_mean(tf.constant(weights, losses.dtype) * losses)


def _hand_gradient(params, tasks, weights, inner_lr, inner_steps, second_order=True):
    params = [tf.constant(p) for p in params]
    with tf.GradientTape() as tape:
        tape.watch(params)
        objective = _hand_objective(params, tasks, weights, inner_lr, inner_steps, second_order)
    return [g.numpy() for g in tape.gradient(objective, params)]


def _tiny_weights(dtype, seed=1):
    return [v.numpy().astype(dtype) for v in MZSRNet(TINY_MODEL, seed=seed).trainable_variables]


# --------------------------------------------------------------------------- the meta-gradient

WEIGHTS_3 = np.array([0.2, 0.3, 0.5])  # unequal, so a mis-weighted step would show


@pytest.fixture(scope="module")
def float64_problem():
    """The tf.function meta-gradient in float64 (the same ``meta_gradients`` the trainer runs)."""
    weights = _tiny_weights(np.float64)
    tasks = _random_tasks(dtype=np.float64)
    variables = [tf.Variable(w) for w in weights]

    @tf.function
    def gradients(first_order):
        grads, _, _ = meta_train.meta_gradients(
            variables, tasks, tf.constant(WEIGHTS_3), total_tasks=2, inner_lr=0.1, inner_steps=3,
            first_order=first_order)
        return grads

    second = [g.numpy() for g in gradients(False)]
    first = [g.numpy() for g in gradients(True)]
    return weights, tasks, second, first


def test_second_order_gradient_matches_finite_differences(float64_problem):
    weights, tasks, second, _ = float64_problem
    rng = np.random.default_rng(7)
    eps = 1e-6

    def objective(ws):
        return float(_hand_objective([tf.constant(w) for w in ws], tasks, WEIGHTS_3, 0.1, 3))

    for _ in range(4):  # random directions through all parameters
        direction = [rng.standard_normal(w.shape) for w in weights]
        plus = objective([w + eps * d for w, d in zip(weights, direction)])
        minus = objective([w - eps * d for w, d in zip(weights, direction)])
        numeric = (plus - minus) / (2 * eps)
        analytic = sum(float(np.sum(g * d)) for g, d in zip(second, direction))
        # Central differences in float64: truncation O(eps^2) and rounding ~1e-16 / eps ~ 1e-10,
        # against derivatives of order 1e-2; 1e-6 relative leaves room for nothing else.
        assert analytic == pytest.approx(numeric, rel=1e-6)
    for index in [(0, 0, 0, 0), (1, 1, 2, 3)]:  # single coordinates of the first kernel
        bumped = [w.copy() for w in weights]
        bumped[0][index] += eps
        plus = objective(bumped)
        bumped[0][index] -= 2 * eps
        minus = objective(bumped)
        assert second[0][index] == pytest.approx((plus - minus) / (2 * eps), rel=1e-5, abs=1e-12)


def test_second_order_gradient_matches_hand_unrolled_eager_loop(float64_problem):
    weights, tasks, second, _ = float64_problem
    expected = _hand_gradient(weights, tasks, WEIGHTS_3, 0.1, 3)
    for got, want in zip(second, expected):
        # Same float64 arithmetic in another order (per-task accumulation): rounding only.
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)


def test_first_order_gradient_stops_inner_gradients_and_differs(float64_problem):
    weights, tasks, second, first = float64_problem
    expected = _hand_gradient(weights, tasks, WEIGHTS_3, 0.1, 3, second_order=False)
    for got, want in zip(first, expected):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)
    difference = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(first, second)))
    size = np.sqrt(sum(np.sum(a ** 2) for a in second))
    assert difference > 1e-2 * size  # the second-order terms matter on this problem


def test_first_order_gradient_is_the_sum_of_query_gradients_at_the_fast_weights(float64_problem):
    """FOMAML: d theta'_k / d theta = I, so the gradient is sum_k w_k / K * mean_t dL_query/dtheta'_k."""
    weights, tasks, _, first = float64_problem
    expected = [np.zeros_like(w) for w in weights]
    for t in range(2):
        fast = [tf.constant(w) for w in weights]
        for k in range(3):
            with tf.GradientTape() as tape:
                tape.watch(fast)
                support = tf.reduce_mean(tf.abs(tasks["labela"][t] - _hand_forward(fast, tasks["inputa"][t])))
            fast = [w - 0.1 * g for w, g in zip(fast, tape.gradient(support, fast))]
            with tf.GradientTape() as tape:
                tape.watch(fast)
                query = tf.reduce_mean(tf.abs(tasks["labelb"][t] - _hand_forward(fast, tasks["inputb"][t])))
            for e, g in zip(expected, tape.gradient(query, fast)):
                e += WEIGHTS_3[k] / 3 / 2 * g.numpy()
    for got, want in zip(first, expected):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)


def test_per_step_inner_rates_follow_the_schedule():
    """``inner_lr_schedule`` gives each inner step its own rate, in the meta-gradient the trainer uses."""
    from mzsr_tf.config import PiecewiseConstant
    config = _tiny_config(inner_lr_schedule=PiecewiseConstant((1, 2), (0.2, 0.1, 0.05)))
    assert config.inner_rates() == (0.2, 0.1, 0.05)
    assert _tiny_config().inner_rates() == (0.1, 0.1, 0.1)  # the reference: inner_lr at every step
    from mzsr_tf.config import from_dict, to_dict
    assert from_dict(MetaTrainConfig, to_dict(config)) == config  # recipe.json round trip
    weights = _tiny_weights(np.float64)
    tasks = _random_tasks(dtype=np.float64, seed=5)
    variables = [tf.Variable(w) for w in weights]
    grads, _, _ = tf.function(meta_train.meta_gradients)(
        variables, tasks, tf.constant(WEIGHTS_3), total_tasks=2, inner_lr=config.inner_rates(),
        inner_steps=3, first_order=False)
    expected = _hand_gradient(weights, tasks, WEIGHTS_3, [0.2, 0.1, 0.05], 3)
    constant = _hand_gradient(weights, tasks, WEIGHTS_3, 0.1, 3)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-13)
    gap = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(expected, constant)))
    assert gap > 1e-3 * np.sqrt(sum(np.sum(a ** 2) for a in constant))  # the rates matter here
    with pytest.raises(ValueError, match="2 inner learning rates for 3 inner steps"):
        meta_train.adapt_to_task(variables, *(tasks[k][0] for k in TASK_KEYS), inner_lr=(0.1, 0.1),
                                 inner_steps=3, first_order=True)


def _initial_loss_gradients(tasks, flags):
    """(mzsr_tf's meta-gradient, the hand one) of objective + 0.4 * sum_t f_t L1(labelb, f(theta; inputb))
    / (K T) on two float64 tasks, K = 3 steps; ``flags`` None: every task (f_t = 1), as without flags."""
    weights = _tiny_weights(np.float64)
    variables = [tf.Variable(w) for w in weights]
    given = tasks if flags is None else dict(tasks, blur_free=tf.constant(flags, tf.float64))
    grads, _, _ = tf.function(meta_train.meta_gradients)(
        variables, given, tf.constant(WEIGHTS_3), total_tasks=2, inner_lr=0.1, inner_steps=3,
        first_order=False, initial_loss_weight=0.4)
    params = [tf.constant(w) for w in weights]
    with tf.GradientTape() as tape:
        tape.watch(params)
        before = [tf.reduce_mean(tf.abs(tasks["labelb"][t] - _hand_forward(params, tasks["inputb"][t])))
                  for t in range(2)]
        counted = tf.add_n([b * (1.0 if flags is None else flags[t]) for t, b in enumerate(before)])
        objective = _hand_objective(params, tasks, WEIGHTS_3, 0.1, 3) + 0.4 * counted / 3 / 2
    expected = tape.gradient(objective, params)
    return [g.numpy() for g in grads], [e.numpy() for e in expected]


def test_initial_loss_weight_adds_the_query_loss_before_adaptation():
    """objective + w_0 * mean_t L1(labelb, f(theta; inputb)) / K, differentiated by hand (float64)."""
    tasks = _random_tasks(dtype=np.float64, seed=8)
    grads, expected = _initial_loss_gradients(tasks, None)
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)
    without = _hand_gradient(_tiny_weights(np.float64), tasks, WEIGHTS_3, 0.1, 3)
    gap = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(expected, without)))
    assert gap > 1e-2 * np.sqrt(sum(np.sum(b ** 2) for b in without))  # the term matters here
    config = _tiny_config(initial_loss_weight=0.4)
    trainer = MetaTrainer(_run(config))
    plain_trainer = MetaTrainer(_run(_tiny_config()))
    tasks32 = _random_tasks(seed=8)
    with_term, _ = trainer.compute_gradients(tasks32)
    plain, _ = plain_trainer.compute_gradients(tasks32)
    assert not np.allclose(with_term[0], plain[0])  # the trainer passes the config's weight on


def test_initial_loss_of_blur_free_tasks_only():
    """With per-task flags f_t the added term is w_0 * sum_t f_t L1(labelb, f(theta; inputb)) / (K T):
    task 0 flagged, task 1 not, differentiated by hand (float64); the trainer reads the flags from
    the meta-batch when ``initial_loss_tasks='blur_free'``."""
    tasks = _random_tasks(dtype=np.float64, seed=9)
    grads, expected = _initial_loss_gradients(tasks, [1.0, 0.0])
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)
    every_task, _ = _initial_loss_gradients(tasks, None)
    assert not np.allclose(every_task[0], grads[0])  # the flags matter here
    config = _tiny_config(initial_loss_weight=0.4, identity_kernel_share=0.5, kernel_size=5,
                          initial_loss_tasks="blur_free")
    tasks32 = _random_tasks(seed=9)
    got = {}
    for name, flags in (("first", [1.0, 0.0]), ("none", [0.0, 0.0])):
        trainer = MetaTrainer(_run(config))
        got[name], _ = trainer.compute_gradients(dict(tasks32, blur_free=tf.constant(flags)))
    plain, _ = MetaTrainer(_run(_tiny_config(kernel_size=5))).compute_gradients(tasks32)
    np.testing.assert_allclose(got["none"][0], plain[0], rtol=1e-6, atol=1e-9)  # no flag: no term
    assert not np.allclose(got["first"][0], plain[0])


def test_trainer_step_gradient_and_adam_update():
    """The float32 tf.function train step: its gradient and its first Adam update (epsilon 1e-8)."""
    config = _tiny_config(meta_lr=1e-3)
    trainer = MetaTrainer(_run(config))
    tasks = _random_tasks(seed=4)
    before = [v.numpy() for v in trainer.variables]
    expected = _hand_gradient([w.astype(np.float64) for w in before],
                              {k: tf.cast(v, tf.float64) for k, v in tasks.items()},
                              np.full(3, 1 / 3), 0.1, 3)
    grads, metrics = trainer.compute_gradients(tasks)
    for got, want in zip(grads, expected):
        # float32 against float64: a few float32 roundings of values of size max|g|.
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    trainer.train_step(tasks)
    for old, new, g in zip(before, trainer.variables, expected):
        # First TF1/Keras Adam step from zero slots: m = (1 - b1) g, v = (1 - b2) g^2 and
        # lr_t = lr sqrt(1 - b2) / (1 - b1), so delta = -lr g / (|g| + eps / sqrt(1 - b2)), eps = 1e-8.
        delta = -1e-3 * g / (np.abs(g) + 1e-8 / np.sqrt(1 - 0.999))
        np.testing.assert_allclose(new.numpy() - old, delta, rtol=1e-4, atol=1e-9)
    assert int(trainer.step.numpy()) == 1


def test_trainer_uses_the_loss_weights_of_its_step():
    config = _tiny_config(inner_steps=5)
    trainer = MetaTrainer(_run(config))
    tasks = _random_tasks(seed=5)
    metrics = trainer.train_step(tasks)  # step 0: every weight is 1/5
    np.testing.assert_allclose(metrics["loss_weights"], [0.2] * 5, rtol=1e-6)
    assert metrics["objective"] == pytest.approx(np.mean(0.2 * metrics["query_losses"]), rel=1e-6)
    trainer.step.assign(1000)
    metrics = trainer.train_step(tasks)
    # Hand values of the reference formula at step 1000: early = 0.2 - 6e-5 * 1000, last = 0.2 + 2.4e-4 * 1000.
    np.testing.assert_allclose(metrics["loss_weights"], [0.14] * 4 + [0.44], rtol=1e-5)
    assert metrics["objective"] == pytest.approx(
        np.mean(np.array([0.14] * 4 + [0.44]) * metrics["query_losses"]), rel=1e-5)
    metrics = trainer.train_step(tasks)  # the step advanced to 1001
    np.testing.assert_allclose(metrics["loss_weights"], [0.2 - 6e-5 * 1001] * 4 + [0.2 + 2.4e-4 * 1001],
                               rtol=1e-5)
    frozen = MetaTrainer(_run(_tiny_config(inner_steps=5, freeze_loss_weights=True)))
    frozen.step.assign(1000)
    np.testing.assert_allclose(frozen.train_step(tasks)["loss_weights"], [0.2] * 5, rtol=1e-6)
    chosen = (0.6, 0.1, 0.1, 0.1, 0.1)
    fixed = MetaTrainer(_run(_tiny_config(inner_steps=5, fixed_loss_weights=chosen)))
    fixed.step.assign(1000)  # constant whatever the step
    metrics = fixed.train_step(tasks)
    np.testing.assert_allclose(metrics["loss_weights"], chosen, rtol=1e-6)
    assert metrics["objective"] == pytest.approx(np.mean(np.array(chosen) * metrics["query_losses"]), rel=1e-6)
    with pytest.raises(ValueError, match=r"one weight per inner step \(5\), got 2"):
        _tiny_config(inner_steps=5, fixed_loss_weights=(0.5, 0.5))


def test_second_order_from_step_switches_the_gradient():
    # Frozen loss weights, so that only the order changes between steps 0 and 2.
    trainer = MetaTrainer(_run(_tiny_config(second_order_from_step=2, freeze_loss_weights=True)))
    tasks = _random_tasks(seed=6)
    first, _ = trainer.compute_gradients(tasks, first_order=True)
    second, _ = trainer.compute_gradients(tasks, first_order=False)
    at_step_0, _ = trainer.compute_gradients(tasks)
    trainer.step.assign(2)
    at_step_2, _ = trainer.compute_gradients(tasks)
    for a, b, c, d in zip(at_step_0, first, at_step_2, second):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, d)
    assert trainer.first_order_at(1) and not trainer.first_order_at(2)


@pytest.mark.slow
def test_matches_the_reference_meta_step(golden_dir, reference_dir):
    """One meta-iteration from the Pretrained weights against the reference's TF1 graph."""
    golden = np.load(golden_dir / "reference_meta_step.npz")
    tasks = {k: tf.constant(golden[k]) for k in TASK_KEYS}
    names = [str(n).replace("MODEL/", "").replace("/", "_") for n in golden["weight_names"]]
    meta_lr = float(golden["meta_lr"])
    for order in ("second_order", "first_order"):
        config = MetaTrainConfig(
            patch_size=8, meta_batch_size=2, task_batch_size=2, inner_steps=int(golden["task_iter"]),
            inner_lr=float(golden["task_lr"]), meta_lr=meta_lr,
            second_order_from_step=0 if order == "second_order" else 10 ** 9)
        trainer = MetaTrainer(RunConfig(train=config))  # one per order: its tf.functions are traced once
        for global_step in golden["global_steps"]:
            case = f"{order}_gs{int(global_step)}"
            trainer.load_transfer(str(reference_dir / "Pretrained" / "Pretrained"))
            for variable in trainer.optimizer.variables:  # fresh Adam (zero slots, t = 1) as the golden's
                if "learning_rate" not in variable.name:
                    variable.assign(tf.zeros_like(variable))
            trainer.step.assign(int(global_step))
            before = [v.numpy() for v in trainer.variables]
            grads, metrics = trainer.compute_gradients(tasks)
            # Same float32 ops in the same order for the losses: they agreed exactly on the TensorFlow this test was written with;
            # 2.21's CPU convolutions round differently (observed: 1 ulp, 2e-7 relative).
            assert metrics["pre_update_loss"] == pytest.approx(golden[f"{case}__pre_update_loss"], rel=4e-7, abs=0)
            np.testing.assert_allclose(metrics["query_losses"], golden[f"{case}__query_losses"], rtol=4e-7, atol=0)
            np.testing.assert_allclose(metrics["loss_weights"], golden[f"{case}__loss_weights"], rtol=1e-6)
            assert metrics["objective"] == pytest.approx(golden[f"{case}__weighted_objective"], rel=1e-6)
            trainer.train_step(tasks)
            for i, name in enumerate(names):
                key = f"{case}__grad__{name}"
                if key not in golden.files:
                    continue
                reference = golden[key]
                # float32 sums in another order (per-task accumulation, TF2 vs TF1 gradient graphs):
                # observed <= 5e-7 of the largest entry; an independent TF2 eager re-implementation
                # differs from the same file by up to 4e-7 (float64 by 4e-7: the file is float32).
                grad_tol = 2e-6 * np.abs(reference).max()
                np.testing.assert_allclose(grads[i], reference, rtol=0, atol=grad_tol, err_msg=key)
                delta_key = f"{case}__delta__{name}"
                if delta_key not in golden.files:
                    continue
                delta = trainer.variables[i].numpy() - before[i]
                # Adam's first step is -lr * g / (|g| + eps'), eps' = eps / sqrt(1 - beta2).  Allowed:
                # (1) 1e-5 * lr: Keras forms 1 - beta2 in float64 before rounding, TF1 in float32, a
                #     6.4e-6 relative difference of every update; (2) the gradient tolerance
                #     propagated through d delta / d g = lr * eps' / (|g| + eps')^2; (3) 8 ulps of the
                #     weights, the rounding of w1 - w0 on both sides.
                eps_hat = 1e-8 / np.sqrt(1 - 0.999)
                tol = (1e-5 * meta_lr + meta_lr * grad_tol * eps_hat / (np.abs(reference) + eps_hat) ** 2
                       + 8 * np.spacing(np.maximum(np.abs(before[i]), np.abs(trainer.variables[i].numpy()))))
                error = np.abs(delta - golden[delta_key])
                assert np.all(error <= tol), f"{delta_key}: worst excess {np.max(error - tol):.3g}"


# --------------------------------------------------------------------------- runs: resume, NaN, crops

def _patch_source(count=48, size=8, seed=0, nan=False):
    patches = np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    if nan:
        floats = patches.astype(np.float32) / 255
        floats[:] = np.nan
        return tf.data.Dataset.from_tensor_slices(floats)
    return tf.data.Dataset.from_tensor_slices(patches)


def _final_state(directory):
    reader = tf.train.load_checkpoint(directory)
    keys = sorted(k for k in reader.get_variable_to_shape_map()
                  if k.startswith(("model/", "optimizer/")) and "OBJECT_GRAPH" not in k)
    return {k: reader.get_tensor(k) for k in keys}


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    config = _tiny_config(meta_iter=4)
    straight = meta_train.run_meta_training(_run(config), str(tmp_path / "straight"), source=_patch_source())
    assert straight.status == "done" and straight.step == 4
    half = meta_train.run_meta_training(_run(_tiny_config(meta_iter=2)), str(tmp_path / "split"),
                                        source=_patch_source())
    assert half.step == 2
    resumed = meta_train.run_meta_training(_run(config), str(tmp_path / "split"), source=_patch_source(), requested_step=2)
    assert resumed.step == 4
    expected, got = _final_state(str(tmp_path / "straight")), _final_state(str(tmp_path / "split"))
    assert expected.keys() == got.keys() and len(expected) > 6
    for key in expected:  # same ops, same data (the iterator position is in the checkpoint)
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert (tmp_path / "split" / "config.json").is_file()
    tags = set()
    for events in (tmp_path / "split" / "logs").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update((value.tag, event.step) for value in event.summary.value)
    for step in (2, 4):  # print_every = 2
        assert {("loss/pre_update", step), ("loss/query_step_3", step), ("loss/objective", step),
                ("loss_weight/step_1", step), ("1.Input_query", step), ("2.output_query", step),
                ("3.GT", step)} <= tags


def test_resume_with_the_wrong_step_is_an_error(tmp_path):
    config = _tiny_config(meta_iter=2)
    meta_train.run_meta_training(_run(config), str(tmp_path), source=_patch_source())
    with pytest.raises(ResumeError, match=r"--step 5 does not match the latest checkpoint .*ckpt-2 \(step 2\)"):
        meta_train.run_meta_training(_run(config), str(tmp_path), source=_patch_source(), requested_step=5)
    with pytest.raises(ResumeError, match=r"--step 3: .* holds no checkpoint to resume"):
        meta_train.run_meta_training(_run(config), str(tmp_path / "empty"), source=_patch_source(), requested_step=3)


def test_non_finite_loss_stops_without_saving(tmp_path):
    with pytest.raises(NonFiniteLossError,
                       match=r"non-finite loss at step 1 .*pre_update_loss=nan.*no checkpoint had been saved"):
        meta_train.run_meta_training(_run(_tiny_config()), str(tmp_path), source=_patch_source(nan=True))
    assert not list(tmp_path.glob("ckpt-*"))


def test_record_patches_are_cropped_to_the_patch_size(tmp_path):
    from mzsr_tf.data.records import write_records
    records = np.random.default_rng(1).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    path = str(tmp_path / "patches.tfrecord")
    write_records(path, [{"label": records}], total=len(records))
    config = _tiny_config(patch_size=16)  # no sidecar: the record shape is taken from the config
    batch = next(iter(meta_train.task_dataset(config, path)))
    assert batch["labela"].shape == (2, 2, 16, 16, 3)
    with pytest.raises(ValueError, match=r"patches\.tfrecord: record 0 has a 'label' of 768 bytes, expected 32x32x3"):
        meta_train.task_dataset(_tiny_config(patch_size=32), path)
    with open(path + ".json", "w") as f:
        json.dump({"shapes": {"label": [16, 16, 3]}}, f)
    with pytest.raises(ValueError, match=r"patches\.tfrecord: patches are \(16, 16, 3\), cannot make 32x32x3"):
        meta_train.task_dataset(_tiny_config(patch_size=32), path)
    batch = next(iter(meta_train.task_dataset(_tiny_config(patch_size=8, shuffle_buffer=1), path)))
    assert batch["labela"].shape == (2, 2, 8, 8, 3)
    windows = np.lib.stride_tricks.sliding_window_view(records / 255.0, (8, 8, 3), axis=(1, 2, 3))
    for patch in batch["labela"].numpy().reshape(-1, 8, 8, 3):  # every label is a window of a record
        assert np.any(np.all(np.abs(windows - patch) < 1e-6, axis=(-3, -2, -1)))


# --------------------------------------------------------------------------- precision and strategies

def test_mixed_precisions_run_with_finite_losses():
    config = _tiny_config()
    tasks = _random_tasks(seed=8)
    mixed = MetaTrainer(_run(config, precision="mixed_float16"))
    plain = MetaTrainer(_run(config))
    for _ in range(3):
        metrics = mixed.train_step(tasks)
        assert all(np.all(np.isfinite(v)) for v in metrics.values())
    assert all(v.dtype == tf.float32 for v in mixed.variables)
    # float16 convolutions: the first step's losses within float16 precision of float32's.
    first_mixed = MetaTrainer(_run(config, precision="mixed_float16")).train_step(tasks)
    first_plain = plain.train_step(tasks)
    np.testing.assert_allclose(first_mixed["query_losses"], first_plain["query_losses"], rtol=5e-3)
    # bfloat16 (8-bit mantissa): within 3e-2 of float32.
    first_bf16 = MetaTrainer(_run(config, precision="mixed_bfloat16")).train_step(tasks)
    np.testing.assert_allclose(first_bf16["query_losses"], first_plain["query_losses"], rtol=3e-2)


def test_meta_batch_must_split_across_replicas():
    class FakeStrategy:
        num_replicas_in_sync = 2
    from mzsr_tf.training import per_replica_batch
    with pytest.raises(ValueError, match=r"meta_batch_size \(tasks per meta-iteration\) = 5 cannot be split "
                                         r"evenly across 2 replicas"):
        per_replica_batch(FakeStrategy(), 5, "meta_batch_size (tasks per meta-iteration)")


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {root!r})
    from mzsr_tf import meta_train
    from mzsr_tf.config import MetaTrainConfig, ModelConfig, RunConfig
    from mzsr_tf.training import make_strategy
    model = ModelConfig(width=4, depth=3)
    config = MetaTrainConfig(patch_size=8, meta_batch_size=4, task_batch_size=2, inner_steps=3,
                             inner_lr=0.1, meta_lr=1e-3, transfer_checkpoint=None, seed=3,
                             shuffle_buffer=8, meta_iter=2, print_every=1, save_every=2)
    rng = np.random.default_rng(0)
    tasks = {{k: tf.constant(rng.uniform(0, 1, (4, 2, 8, 8, 3)).astype(np.float32))
             for k in meta_train.TASK_KEYS}}
    strategy = make_strategy("mirrored")
    results = {{"replicas": strategy.num_replicas_in_sync}}
    runs = {{}}
    for name, s in (("one", None), ("two", strategy)):
        trainer = meta_train.MetaTrainer(RunConfig(model=model, train=config), strategy=s)
        grads, _ = trainer.compute_gradients(tasks)
        metrics = [trainer.train_step(tasks) for _ in range(2)]
        slots = [v.numpy() for v in trainer.optimizer.variables if "mentum" in v.name or "elocity" in v.name]
        runs[name] = ([v.numpy() for v in trainer.variables], metrics, grads, slots)
    # Adam is nearly invariant to the scale of the gradient, so compare gradients and slots too.
    results["grad_rel_diff"] = max(float(np.abs(a - b).max() / np.abs(a).max())
                                   for a, b in zip(runs["one"][2], runs["two"][2]))
    results["slot_rel_diff"] = max(float(np.abs(a - b).max() / np.abs(a).max())
                                   for a, b in zip(runs["one"][3], runs["two"][3]))
    results["num_slots"] = len(runs["one"][3])
    results["max_weight_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(runs["one"][0], runs["two"][0]))
    results["max_change"] = max(float(np.abs(a - b).max()) for a, b in
                                zip(runs["one"][0], meta_train.MetaTrainer(RunConfig(model=model, train=config)).variables))
    results["loss_diff"] = max(float(np.abs(runs["one"][1][i][k] - runs["two"][1][i][k]).max())
                               for i in range(2) for k in ("pre_update_loss", "query_losses", "objective"))
    patches = np.random.default_rng(0).integers(0, 256, (48, 8, 8, 3), dtype=np.uint8)
    run = meta_train.run_meta_training(RunConfig(model=model, train=config), {directory!r},
                                       source=tf.data.Dataset.from_tensor_slices(patches), strategy=strategy)
    results["run_step"] = run.step
    print("RESULT " + json.dumps(results))
""")


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus_matches_one_device(tmp_path):
    script = MIRRORED_SCRIPT.format(root=REPO_ROOT, directory=str(tmp_path / "run"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    print(result)
    assert result["replicas"] == 2
    assert result["max_change"] > 1e-3  # two Adam steps of lr 1e-3 moved the weights
    # Summing two replicas' gradients reorders float32 additions: rounding-level differences only.
    assert result["max_weight_diff"] < 1e-6
    assert result["grad_rel_diff"] < 1e-5 and result["slot_rel_diff"] < 1e-5
    assert result["num_slots"] == 2 * 6  # Adam's m and v of the 6 tensors
    assert result["loss_diff"] < 1e-6
    assert result["run_step"] == 2
    assert (tmp_path / "run" / "ckpt-2.index").is_file()


# --------------------------------------------------------------------------- command line

class _Flags:
    def __init__(self, **values):
        defaults = dict(model=None, config=None, iterations=None, tfrecord=None, first_order_until=None,
                        checkpoint_dir=None, transfer=None, print_every=None, save_every=None,
                        freeze_loss_weights=False, trial=0, step=None, precision=None, strategy=None)
        defaults.update(values)
        self.__dict__.update(defaults)


def _config_from_flags(flags):
    """The stage config ``cli.run_config_from_flags`` resolves for ``scripts/main.py --train`` flags."""
    from mzsr_tf import cli
    return cli.run_config_from_flags(flags)[0].train


def test_config_from_flags_preset_then_json_then_flags(tmp_path):
    config = _config_from_flags(_Flags())
    assert (config.meta_batch_size, config.task_batch_size) == (5, 4)  # the authors' Directx2
    config = _config_from_flags(_Flags(model=2))
    assert (config.meta_batch_size, config.task_batch_size, config.ds_method) == (4, 8, "bicubic")
    overrides = tmp_path / "c.json"
    overrides.write_text(json.dumps({"task_batch_size": 2, "meta_iter": 7, "save_every": 3}))
    config = _config_from_flags(_Flags(config=str(overrides), iterations=9,
                                                 first_order_until=100, freeze_loss_weights=True,
                                                 transfer="none"))
    assert (config.task_batch_size, config.meta_iter, config.save_every) == (2, 9, 3)
    assert config.second_order_from_step == 100 and config.freeze_loss_weights
    assert config.transfer_checkpoint is None


def test_config_from_flags_bad_inputs(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"--config .*bad\.json: cannot read a JSON object"):
        _config_from_flags(_Flags(config=str(bad)))
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"expected a JSON object of MetaTrainConfig options, got list"):
        _config_from_flags(_Flags(config=str(listed)))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"meta_lr": 1e-4, "metalr": 1}))
    with pytest.raises(ValueError, match=r"unknown MetaTrainConfig option\(s\): metalr"):
        _config_from_flags(_Flags(config=str(unknown)))


def _write_tiny_records(path, count=24, size=8):
    from mzsr_tf.data.records import write_records
    patches = np.random.default_rng(2).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    write_records(str(path), [{"label": patches}], total=count)


@pytest.mark.slow
def test_cli_trains_and_saves_on_sigint(tmp_path):
    """``scripts/main.py --train`` end to end; SIGINT after the first iterations saves and exits 0."""
    import signal
    import time
    records = tmp_path / "tiny.tfrecord"
    _write_tiny_records(records)
    overrides = tmp_path / "tiny.json"
    overrides.write_text(json.dumps({"patch_size": 8, "meta_batch_size": 2, "task_batch_size": 2,
                                     "inner_steps": 2, "shuffle_buffer": 8, "save_every": 1000}))
    command = [sys.executable, os.path.join(REPO_ROOT, "scripts", "main.py"), "--train", "--trial", "3",
               "--config", str(overrides), "--tfrecord", str(records), "--iterations", "100000",
               "--checkpoint-dir", str(tmp_path / "runs"), "--transfer", "none", "--print-every", "1"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=str(tmp_path))
    output = []
    deadline = time.time() + 300
    for line in proc.stdout:
        output.append(line)
        if line.startswith("Iteration: 3 "):
            proc.send_signal(signal.SIGINT)
            break
        assert time.time() < deadline, "".join(output)
    rest, _ = proc.communicate(timeout=300)
    output.append(rest)
    log = "".join(output)
    assert proc.returncode == 0, log
    assert "stopped by SIGINT" in log
    run = tmp_path / "runs" / "Model3"
    saved = sorted(p.name for p in run.glob("ckpt-*.index"))
    assert len(saved) == 1 and int(saved[0][5:-6]) >= 3, saved
    assert json.loads((run / "config.json").read_text())["values"]["train"]["patch_size"] == 8
