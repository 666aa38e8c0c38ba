"""Meta-transfer learning (the paper's Algorithm 1): meta-gradients, the train step, the training run.

One meta-iteration on ``T = meta_batch_size`` tasks, each a support set ``(inputa, labela)`` and a
query set ``(inputb, labelb)`` of ``task_batch_size`` ILR/HR patches (float32 in [0, 1]):

    for each task t:   θ_t,0 = θ
                       θ_t,k+1 = θ_t,k − α_k ∇ L1(labela, f(θ_t,k; inputa))   k = 0 .. K−1
                       L_t,k = L1(labelb, f(θ_t,k+1; inputb))                      (query loss)
    objective = mean_k( w_k · mean_t L_t,k )         w = inner.loss_weights(step)
    θ ← Adam(meta_lr)(θ, ∇_θ objective)

with α_k = ``config.inner_rates()[k]`` (the reference: ``inner_lr`` at every step).

exactly as the reference's ``train.py`` (``reduce_mean(total_losses2 * LW)``: the *mean*, not the sum,
of the ``K`` weighted query losses).  Every inner step is ``mzsr_tf.inner.inner_step`` (shared with the
meta-test).  Second-order meta-gradients come from differentiating through the inner gradients
(nested ``tf.GradientTape``s inside one ``tf.function``); first order is the same code with the inner
gradients stopped.  While ``step < config.second_order_from_step`` the first-order approximation is
used (the reference's ``SECOND_ORDER_GRAD_ITER``, here a plain config threshold).

Differences from the reference (see also ``MetaTrainConfig``):

- The step counter advances with every meta-iteration, so the loss weights anneal as intended
  (MAML++ multi-step loss).  The reference creates ``global_step`` but never increments it, so its
  weights stay at ``1 / K`` (at their ``--step`` value when resumed); ``freeze_loss_weights=True``
  keeps them at the step-0 values ``1 / K`` throughout.
- The gradient of the objective is accumulated task by task (it is a sum over tasks), so memory
  holds one task's graph at a time instead of all of them; the result is the same up to float
  rounding order.
- Adam's epsilon is TF1's default 1e-8 (Keras' default is 1e-7), so updates match the reference
  (to a relative 6.4e-6: Keras forms ``1 - beta_2`` in float64, TF1 in float32).
- First order is genuinely cheaper (about half a second-order iteration); the reference's
  ``tf.cond(stop_grad, ...)`` switch still runs its whole second-order graph.
- Checkpoints hold the model, Adam's state and the step; the task stream is a function of (seed, step),
  so a resumed run sees the same tasks as an uninterrupted one.

Scale-out and precision:

- ``strategy``: tasks are split across replicas (``meta_batch_size`` must be a multiple of the replica
  count); each replica's objective is its tasks' share of the global mean, and Keras all-reduces
  (sums) the gradients before the identical Adam update on every replica.
- ``precision='mixed_bfloat16'``: convolutions run in bfloat16 (faster on CPUs with AVX512_BF16:
  1.6x per meta-iteration in an A/B on this project's 2-core machine); variables, fast weights,
  losses and updates stay float32; no loss scaling is needed (bfloat16 has float32's exponent range).
- ``precision='mixed_float16'``: convolutions run in float16, variables, fast weights, losses and
  the residual addition stay float32.  The outer Adam is wrapped in a dynamic
  ``LossScaleOptimizer`` (a step whose scaled gradients overflow is skipped and the scale halved).
  Inner steps scale their support loss by a static ``inner.INNER_LOSS_SCALE_FLOAT16`` before
  differentiating and divide the gradients afterwards (``inner_step``'s ``loss_scale``), since the
  per-pixel gradients of a mean L1 loss (~1e-5) are subnormal in float16.  The update is
  mathematically unchanged.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from mzsr_tf import inner
from mzsr_tf.checkpoints import load_weights, resolve_transfer
from mzsr_tf.config import MetaTrainConfig, RunConfig
from mzsr_tf.data.pipelines import BLUR_FREE_KEY, TASK_KEYS, task_keys
from mzsr_tf.inner import ForwardFn, inner_loss_scale
from mzsr_tf.model import compute_dtype, forward
from mzsr_tf.training import (LoopResult, LoopSettings, RunState, SignalGuard, check_workers_agree, latest_checkpoint,
                              make_strategy, make_trainer_state, open_run_state, per_replica_batch,
                              run_loop, split_across_replicas, stage_config, train_in_folder, write_images,
                              write_scalars)

log = logging.getLogger(__name__)

Tasks = Mapping[str, tf.Tensor]


# --------------------------------------------------------------------------- the meta-objective

def adapt_to_task(params: Sequence[tf.Tensor], inputa: tf.Tensor, labela: tf.Tensor,
                  inputb: tf.Tensor, labelb: tf.Tensor, *, inner_lr, inner_steps: int,
                  first_order: bool, forward_fn: ForwardFn = forward,
                  inner_loss_scale: float = 1.0) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Adapt ``params`` to one task by ``inner_steps`` SGD steps on the support set.

    Args:
      params: the meta-parameters (variables or tensors, ``model.PARAM_NAMES`` order).
      inputa, labela: support ILR inputs and HR labels, ``[N, H, W, C]`` in [0, 1].
      inputb, labelb: query inputs and labels, ``[M, H, W, C]``.
      inner_lr: the learning rate of every inner step (float), or a sequence of ``inner_steps``
        per-step rates.
      first_order: stop the gradient through the inner gradients.

    Returns ``(support_loss, query_losses, query_output)``: the support L1 loss before adaptation
    (the reference's "pre-update loss"), float32 ``[inner_steps]`` query L1 losses after each step
    (float64 for float64 inputs), and the query output after the last step.
    """
    fast = list(params)
    rates = list(inner_lr) if isinstance(inner_lr, (tuple, list)) else [inner_lr] * inner_steps
    if len(rates) != inner_steps:
        raise ValueError(f"{len(rates)} inner learning rates for {inner_steps} inner steps")
    # Python floats become constants of the weights' dtype: exact in float64 too
    # (tf.cast(0.1, tf.float64) would round through float32).
    rates = [tf.constant(r, dtype=fast[0].dtype) if isinstance(r, (int, float)) else r for r in rates]
    query_losses = []
    support_loss = None
    query_output = None
    for k in range(inner_steps):
        fast, loss = inner.inner_step(forward_fn, fast, inputa, labela, rates[k],
                                      first_order=first_order, loss_scale=inner_loss_scale)
        if k == 0:
            support_loss = loss
        query_output = forward_fn(fast, inputb)
        query_losses.append(inner.l1_loss(labelb, query_output))
    return support_loss, tf.stack(query_losses), query_output


def meta_gradients(variables: Sequence[tf.Variable], tasks: Tasks, weights: tf.Tensor, *,
                   total_tasks: int, inner_lr, inner_steps: int, first_order: bool,
                   forward_fn: ForwardFn = forward, inner_loss_scale: float = 1.0,
                   scale_loss: Optional[Callable[[tf.Tensor], tf.Tensor]] = None,
                   initial_loss_weight: float = 0.0
                   ) -> Tuple[List[tf.Tensor], tf.Tensor, tf.Tensor]:
    """Gradient of these tasks' part of the meta-objective, accumulated task by task.

    The meta-objective over all ``total_tasks`` tasks is ``mean_k(w_k · mean_t L_t,k)`` =
    ``Σ_t mean_k(w_k · L_t,k) / total_tasks``; ``tasks`` (``TASK_KEYS`` → ``[T_local, ...]``) may be
    a replica's share of them.  With ``initial_loss_weight`` w_0 > 0 it also holds
    ``w_0 · mean_t L_t,0 / K``, ``L_t,0`` being the query loss *before* adaptation (it keeps the
    initialisation itself usable; 0, the reference's objective, computes nothing extra).  When
    ``tasks`` holds ``BLUR_FREE_KEY`` (``[T_local]``, 1 or 0) that term is ``w_0 · Σ_t f_t L_t,0 /
    (K · total_tasks)``: only the flagged (blur-free) tasks' losses before adaptation count.

    Returns ``(gradients, support_loss_sum, query_loss_sums)``: gradients in ``variables`` order
    (of ``scale_loss(objective part)`` when given: mixed-precision loss scaling), the sum over
    these tasks of the pre-update support loss, and of each step's query loss ``[inner_steps]``.
    """
    num_tasks = tasks["inputa"].shape[0]
    if num_tasks is None:
        raise ValueError("the number of tasks per replica must be static")
    variables = list(variables)
    loss_dtype = tf.float64 if variables[0].dtype == tf.float64 else tf.float32

    def one_task(t, grads, support_sum, query_sums):
        with tf.GradientTape() as tape:
            support_loss, query_losses, _ = adapt_to_task(
                variables, *(tasks[key][t] for key in TASK_KEYS), inner_lr=inner_lr,
                inner_steps=inner_steps, first_order=first_order, forward_fn=forward_fn,
                inner_loss_scale=inner_loss_scale)
            part = tf.reduce_mean(tf.cast(weights, loss_dtype) * query_losses) / total_tasks
            if initial_loss_weight:
                before = inner.l1_loss(tasks["labelb"][t], forward_fn(variables, tasks["inputb"][t]))
                if BLUR_FREE_KEY in tasks:
                    before *= tf.cast(tasks[BLUR_FREE_KEY][t], before.dtype)
                part += initial_loss_weight * tf.cast(before, loss_dtype) / inner_steps / total_tasks
            if scale_loss is not None:
                part = scale_loss(part)
        task_grads = tape.gradient(part, variables)
        return (t + 1, [g + h for g, h in zip(grads, task_grads)], support_sum + support_loss,
                query_sums + query_losses)

    # One task at a time (parallel_iterations=1): the graph is traced once whatever the number
    # of tasks, and memory holds a single task's activations.
    initial = (tf.constant(0), [tf.zeros(v.shape, v.dtype) for v in variables],
               tf.zeros([], loss_dtype), tf.zeros([inner_steps], loss_dtype))
    _, grads, support_sum, query_sums = tf.while_loop(
        lambda t, *_: t < num_tasks, one_task, initial, parallel_iterations=1)
    return grads, support_sum, query_sums


# --------------------------------------------------------------------------- the trainer

class MetaTrainer:
    """The network, the outer Adam and the step counter, with ``tf.function`` meta-iterations.

    Args:
      run: the run's configuration: ``run.train`` (a ``MetaTrainConfig``: ``meta_lr``, ``inner_lr``,
        ``inner_steps``, ``meta_batch_size``, loss-weight schedule, ``second_order_from_step``,
        ``seed``), ``run.model`` (narrow networks for tests) and ``run.runtime`` (precision, strategy).
      strategy: a ``tf.distribute`` strategy object that overrides ``run.runtime.strategy`` (tests use
        it for logical devices); tasks are split across its replicas.

    ``model`` starts from random weights (seeded by ``run.train.seed``); ``load_transfer`` loads the
    pretrained ones.  ``train_step(tasks)`` runs one meta-iteration and returns its metrics.

    Example::

        run = RunConfig(train=get_preset("direct_x2").meta_train_config(patch_size=32))
        trainer = MetaTrainer(run)
        trainer.load_transfer("checkpoints/pretrained_x2/pretrained_x2")
        tasks = next(iter(task_dataset(run.train)))      # {'inputa', 'labela', 'inputb', 'labelb'}
        metrics = trainer.train_step(tasks)              # metrics["query_losses"]: [inner_steps]
    """

    def __init__(self, run: RunConfig, strategy: Optional[tf.distribute.Strategy] = None):
        config = stage_config(run, MetaTrainConfig, "MetaTrainer")
        self.run = run
        self.config = config
        self.precision = run.runtime.precision
        self.strategy = strategy or make_strategy(run.runtime.strategy)
        self.tasks_per_replica = per_replica_batch(self.strategy, config.meta_batch_size,
                                                   "meta_batch_size (tasks per meta-iteration)")
        self.forward_fn = functools.partial(forward, compute_dtype=compute_dtype(self.precision))
        self.inner_loss_scale = inner_loss_scale(self.precision)
        self.inner_rates = config.inner_rates()  # Python floats, read outside the traced functions
        self.model, self.step, self.optimizer = make_trainer_state(run, self.strategy, config.seed, config.meta_lr)
        self._step_fn = tf.function(self._distributed_step)
        self._gradients_fn = tf.function(self._distributed_gradients)
        self._query_output_fn = tf.function(self._query_output)

    @property
    def variables(self) -> List[tf.Variable]:
        return list(self.model.trainable_variables)

    def load_transfer(self, path: str) -> str:
        """Load the (pre-trained) weights at ``path`` (TF1 or TF2 checkpoint); return what was read."""
        return load_weights(self.model, path)

    def first_order_at(self, step: int) -> bool:
        """Whether meta-iteration ``step`` uses the first-order approximation."""
        return step < self.config.second_order_from_step

    def loss_weights_at(self, step) -> tf.Tensor:
        """The query-loss weights ``[inner_steps]`` of meta-iteration ``step``."""
        config = self.config
        if config.fixed_loss_weights is not None:
            return tf.constant(config.fixed_loss_weights, tf.float32)
        if config.freeze_loss_weights:
            step = 0
        return inner.loss_weights(step, config.inner_steps, config.loss_weight_anneal_steps,
                                  config.loss_weight_floor)

    # -- inside tf.function

    def _replica_gradients(self, tasks: Tasks, weights: tf.Tensor, first_order: bool):
        scale_loss = getattr(self.optimizer, "scale_loss", None) if self.inner_loss_scale != 1.0 \
            else None
        return meta_gradients(
            self.variables, tasks, weights, total_tasks=self.config.meta_batch_size,
            inner_lr=self.inner_rates, inner_steps=self.config.inner_steps,
            first_order=first_order, forward_fn=self.forward_fn,
            inner_loss_scale=self.inner_loss_scale, scale_loss=scale_loss,
            initial_loss_weight=self.config.initial_loss_weight)

    def _replica_step(self, tasks: Tasks, weights: tf.Tensor, first_order: bool):
        grads, support_sum, query_sums = self._replica_gradients(tasks, weights, first_order)
        # Keras sums the gradients over replicas, then applies the same update on each.
        self.optimizer.apply_gradients(zip(grads, self.variables))
        return support_sum, query_sums

    def _metrics(self, support_sum, query_sums, weights) -> Dict[str, tf.Tensor]:
        total = float(self.config.meta_batch_size)
        query = self.strategy.reduce(tf.distribute.ReduceOp.SUM, query_sums, axis=None) / total
        return {"pre_update_loss": self.strategy.reduce(tf.distribute.ReduceOp.SUM, support_sum,
                                                        axis=None) / total,
                "query_losses": query,
                "objective": tf.reduce_mean(weights * query),
                "loss_weights": weights}

    def _distributed_step(self, tasks: Tasks, first_order: bool) -> Dict[str, tf.Tensor]:
        weights = self.loss_weights_at(self.step)
        support_sum, query_sums = self.strategy.run(self._replica_step,
                                                    args=(tasks, weights, first_order))
        metrics = self._metrics(support_sum, query_sums, weights)
        # Checked for NaN/Inf with the losses, so a diverged update is never saved.
        metrics["weight_norm"] = tf.linalg.global_norm([tf.convert_to_tensor(v) for v in self.variables])
        self.step.assign_add(1)
        return metrics

    def _distributed_gradients(self, tasks: Tasks, first_order: bool):
        weights = self.loss_weights_at(self.step)
        grads, support_sum, query_sums = self.strategy.run(self._replica_gradients,
                                                           args=(tasks, weights, first_order))
        grads = [self.strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in grads]
        return grads, self._metrics(support_sum, query_sums, weights)

    def _query_output(self, inputa, labela, inputb, labelb):
        _, _, output = adapt_to_task(
            self.variables, inputa, labela, inputb, labelb, inner_lr=self.inner_rates,
            inner_steps=self.config.inner_steps, first_order=True, forward_fn=self.forward_fn,
            inner_loss_scale=self.inner_loss_scale)
        return output

    # -- eager API

    def distribute(self, tasks: Tasks) -> Tasks:
        """Split a global meta-batch of tensors across replicas (no-op without distribution)."""
        return split_across_replicas(self.strategy, {k: tasks[k] for k in task_keys(self.config)})

    def train_step(self, tasks: Tasks) -> Dict[str, np.ndarray]:
        """One meta-iteration on ``tasks`` (global tensors or distributed values); returns metrics.

        Metrics (numpy): ``pre_update_loss``, ``query_losses`` ``[inner_steps]`` (means over tasks),
        ``objective`` (the weighted query losses after adaptation: the meta-objective without the
        ``initial_loss_weight`` term), the ``loss_weights`` used and the global norm
        of the updated weights (``weight_norm``); the step counter advances by one.
        """
        first_order = self.first_order_at(int(self.step.numpy()))
        metrics = self._step_fn(self.distribute(tasks), first_order=first_order)
        return {k: v.numpy() for k, v in metrics.items()}

    def compute_gradients(self, tasks: Tasks, first_order: Optional[bool] = None
                          ) -> Tuple[List[np.ndarray], Dict[str, np.ndarray]]:
        """The meta-gradient at the current weights and step, without applying it.

        ``first_order`` defaults to the config's choice for the current step.  No training code
        calls it: it exists so the meta-gradient can be checked against independent computations
        (a hand-unrolled objective, finite differences, the reference's graph) and compared across
        strategies.
        """
        if first_order is None:
            first_order = self.first_order_at(int(self.step.numpy()))
        grads, metrics = self._gradients_fn(self.distribute(tasks), first_order=bool(first_order))
        return [g.numpy() for g in grads], {k: v.numpy() for k, v in metrics.items()}

    def query_images(self, tasks: Tasks, max_images: int = 4) -> Dict[str, tf.Tensor]:
        """First task's query input, adapted output and GT (the reference's image summaries)."""
        local = {k: self.strategy.experimental_local_results(tasks[k])[0][0][:max_images]
                 if isinstance(tasks[k], tf.distribute.DistributedValues) else tasks[k][0][:max_images]
                 for k in TASK_KEYS}
        output = self._query_output_fn(*(local[k] for k in TASK_KEYS))
        return {"1.Input_query": local["inputb"], "2.output_query": output,
                "3.GT": local["labelb"]}


# --------------------------------------------------------------------------- data

def task_dataset(config: MetaTrainConfig, source: Any = None,
                 seed: Optional[int] = None, start_step: int = 0) -> tf.data.Dataset:
    """Endless meta-batches (dicts of ``task_keys(config)``) for ``config`` from ``source``, from
    meta-iteration ``start_step + 1`` on.

    ``source``: record files (default ``config.tfrecord_path``) or a ``tf.data.Dataset`` of HR
    patches ``[P, P, C]`` (``P = config.patch_size``).  Records of larger patches (e.g. the standard
    64x64 ones for ``patch_size=32``) are cut to ``patch_size`` by random crops, a fresh one each
    time a record is read, drawn from stateless seeds ``(seed, read count)``.
    """
    from mzsr_tf.data.pipelines import meta_task_dataset

    seed = config.seed if seed is None else seed
    return meta_task_dataset(record_patches(config, source, seed), config, seed, start_step=start_step)


def record_patches(config: MetaTrainConfig, source: Any = None, seed: Optional[int] = None) -> tf.data.Dataset:
    """The HR patches ``[P, P, C]`` of ``task_dataset``'s ``source`` (a dataset is returned as it is): the
    records are read and checked here (a ``RecordError`` naming the file), and cut to ``patch_size``."""
    from mzsr_tf.data.records import LABEL_KEY, read_patches, shapes_from_metadata

    seed = config.seed if seed is None else seed
    if source is None:
        source = config.tfrecord_path
    if isinstance(source, tf.data.Dataset):
        return source
    try:
        shape = tuple(shapes_from_metadata(source, [LABEL_KEY])[LABEL_KEY])
    except ValueError:
        shape = (config.patch_size, config.patch_size, config.channels)
        log.info("no patch shape recorded for %s; assuming %s", source, shape)
    size = config.patch_size
    if shape[0] < size or shape[1] < size or shape[2] != config.channels:
        raise ValueError(f"{source}: patches are {shape}, cannot make {size}x{size}x"
                         f"{config.channels} training patches from them")
    patches = read_patches(source, shape)
    if shape[:2] != (size, size):
        log.info("cutting random %dx%d crops from the %dx%d patches of %s", size, size, *shape[:2],
                 source)

        def crop(index, patch):
            crop_seed = tf.stack([tf.constant(seed, tf.int64), index])
            return tf.image.stateless_random_crop(patch, [size, size, config.channels], crop_seed)

        patches = patches.repeat().enumerate().map(crop, num_parallel_calls=tf.data.AUTOTUNE)
    return patches


# --------------------------------------------------------------------------- the run

def run_meta_training(run: RunConfig, directory: str, *, source: Any = None,
                      strategy: Optional[tf.distribute.Strategy] = None,
                      requested_step: Optional[int] = None, guard: Optional[SignalGuard] = None
                      ) -> LoopResult:
    """Meta-train into the run folder ``directory`` until ``run.train.meta_iter`` iterations.

    Resumes from the folder's latest checkpoint if there is one (``requested_step``, the
    reference's ``--step``, must then match it, and ``run`` must be the folder's configuration up to
    ``config.RUN_LENGTH_FIELDS``: checked before anything is written); otherwise starts from
    ``run.train.transfer_checkpoint`` (the bicubic-pretrained weights; ``'auto'``: found by
    ``checkpoints.resolve_transfer``; ``None`` means random weights).
    Holds the folder's ``RunLock`` while training.  Saves ``config.json`` (the whole ``run``), a
    checkpoint every ``save_every`` iterations (keeping ``max_to_keep``), TensorBoard summaries in
    ``logs/`` every ``print_every``, and a checkpoint on SIGINT/SIGTERM.  Raises
    ``NonFiniteLossError`` (nothing saved) when a loss becomes NaN or Inf.

    ``source`` (records or a ``tf.data.Dataset`` of HR patches) overrides ``run.train.tfrecord_path``;
    ``strategy`` (an object) overrides ``run.runtime.strategy``.

    Multi-worker (``run.runtime.strategy='multiworker'``, one process per worker, each with its
    ``TF_CONFIG``): only the chief checks and locks the run folder and writes into it; every worker
    reads the same whole meta-batches (each replica takes its slice of the tasks), saves when the
    chief does (the others into a temporary folder, removed at the end) and resumes from the run
    folder, which must therefore be on storage all workers see.  A lost worker stops the others with
    ``WorkerLostError`` (nothing saved after the last checkpoint); the run resumes from that
    checkpoint on the same cluster or, since ``runtime.strategy`` may change on resume, on one
    process.
    """
    strategy = strategy or make_strategy(run.runtime.strategy)
    # the records are read and checked, and the transfer weights found (or refused), before the run folder is made
    source = record_patches(run.train, source)
    transfer = None if latest_checkpoint(directory) else resolve_transfer(run.train.transfer_checkpoint)
    return train_in_folder(run, directory, strategy, lambda chief: _meta_train_locked(
        run, directory, source, strategy, chief, requested_step, guard, transfer))


def _meta_train_locked(run: RunConfig, directory: str, source: Any, strategy: tf.distribute.Strategy,
                       chief: bool, requested_step: Optional[int], guard: Optional[SignalGuard],
                       transfer: Optional[str]) -> LoopResult:
    config = run.train
    trainer = MetaTrainer(run, strategy)
    state = open_run_state(directory, run, trainer.step, strategy, chief,
                           model=trainer.model, optimizer=trainer.optimizer)
    try:
        return _meta_train_loop(run, directory, trainer, source, state, requested_step, guard, transfer)
    finally:
        state.close()


def _meta_train_loop(run: RunConfig, directory: str, trainer: MetaTrainer, source: Any, state: RunState,
                     requested_step: Optional[int], guard: Optional[SignalGuard],
                     transfer: Optional[str]) -> LoopResult:
    config = run.train
    strategy = trainer.strategy
    resumed = state.resume(requested_step)
    if resumed:
        log.info("[*] resumed %s at iteration %d", resumed, state.current_step)
    elif transfer:
        loaded = trainer.load_transfer(transfer)
        log.info("[*] transfer: starting from the pre-trained weights %s", loaded)
    else:
        log.info("[*] no transfer checkpoint: starting from random weights (seed %d)", config.seed)
    check_workers_agree(strategy, state, trainer.variables)
    state.write_config()
    precision = run.runtime.precision
    log.info("[*] meta-training %s: %d tasks x %d images of %dx%d, %d inner steps, inner_lr %s, "
             "meta_lr %g, %s, %d replica(s); first order until iteration %d; loss weights %s",
             directory, config.meta_batch_size, config.task_batch_size, config.patch_size,
             config.patch_size, config.inner_steps, list(config.inner_rates()), config.meta_lr, precision,
             strategy.num_replicas_in_sync, config.second_order_from_step,
             (f"fixed at {list(config.fixed_loss_weights)}" if config.fixed_loss_weights is not None
              else "frozen at 1/K" if config.freeze_loss_weights else "annealed"))

    def step_fn(tasks):
        step = state.current_step
        if step == config.second_order_from_step and step > 0:
            log.info("[*] iteration %d: switching to second-order meta-gradients", step)
        return trainer.train_step(tasks)

    def report(step: int, metrics: Mapping[str, np.ndarray], tasks) -> None:
        query = metrics["query_losses"]
        log.info("Iteration: %d (Pre, Post) Loss: %.6f %.6f  objective %.6f  Time: %.2f  "
                 "(%.3f it/s, data wait %.0f%%)", step, metrics["pre_update_loss"], query[-1],
                 metrics["objective"], metrics["seconds"], metrics["steps_per_second"],
                 100 * metrics["data_wait_share"])
        scalars = {"loss/pre_update": metrics["pre_update_loss"],
                   "loss/objective": metrics["objective"],
                   "time/iterations_per_second": metrics["steps_per_second"],
                   "time/data_wait_share": metrics["data_wait_share"]}
        for k, value in enumerate(query):
            scalars[f"loss/query_step_{k + 1}"] = value
            scalars[f"loss_weight/step_{k + 1}"] = metrics["loss_weights"][k]
        write_scalars(state.writer, step, scalars)
        write_images(state.writer, step, trainer.query_images(tasks))

    # Every worker reads whole meta-batches (the same ones: the pipeline is deterministic) and each
    # replica takes its slice of the tasks in ``train_step``; the stream starts at the restored step.
    batches = iter(task_dataset(config, source, start_step=state.current_step))
    settings = LoopSettings(config.meta_iter, config.print_every, config.save_every)
    return run_loop(step_fn, batches, state, settings, report, guard)
