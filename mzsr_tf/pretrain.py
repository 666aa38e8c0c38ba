"""Large-scale "bicubic" pretraining (the reference's ``Large-Scale_Training``): θ_T for the transfer.

Plain supervised super-resolution on pairs ``(ILR, HR)``: 96x96 HR patches, their 48x48 bicubic LR
upscaled back by cubic ``imresize`` (``mzsr_tf.data.pretrain_dataset``), batches of 32, the L1 loss,
and Adam with a learning rate of 4e-4 halved every 100,000 steps, never below 1e-4
(``tf.train.exponential_decay(4e-4, step, 100000, 0.5, staircase=True)`` floored at 1e-4, as the
reference).  Checkpoints, resume, summaries, signal handling and the NaN stop are the same as for
meta-training (``mzsr_tf.training``); so are ``strategy`` (the batch is split across replicas,
gradients summed) and ``precision``: ``'mixed_float16'`` (float16 convolutions, float32 variables, a
dynamic ``LossScaleOptimizer``) or ``'mixed_bfloat16'`` (bfloat16 convolutions, no loss scaling).

Differences from the reference: Adam's epsilon is TF1's 1e-8 (Keras' default is 1e-7); the
reference bicubic-upscales every batch in a numpy loop, here it is part of the ``tf.data`` pipeline;
summaries are written every ``print_every`` steps (reference: 1000) and checkpoints every
``save_every`` (reference: 10000, keeping all).
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Dict, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from mzsr_tf.config import PretrainConfig, RunConfig
from mzsr_tf.inner import l1_loss
from mzsr_tf.model import compute_dtype, forward
from mzsr_tf.training import (LoopResult, LoopSettings, RunState, SignalGuard, check_workers_agree,
                              make_strategy, make_trainer_state, open_run_state, per_replica_batch,
                              run_loop, split_across_replicas, stage_config, train_in_folder, write_images,
                              write_scalars)

log = logging.getLogger(__name__)


def learning_rate_at(step, config: PretrainConfig) -> tf.Tensor:
    """``max(lr * decay_rate ** floor(step / decay_steps), min_lr)`` as float32 (step 0-based)."""
    step = tf.cast(step, tf.int64)
    halvings = tf.cast(step // config.lr_decay_steps, tf.float32)
    return tf.maximum(config.lr * tf.pow(tf.constant(config.lr_decay_rate, tf.float32), halvings),
                      config.min_lr)


class Pretrainer:
    """The network, Adam and the step counter, with a ``tf.function`` training step.

    ``train_step((ilr, hr))`` (each float32 ``[batch, P, P, C]`` in [0, 1], global batch) runs one
    step with the learning rate of the current step and returns ``{'loss', 'learning_rate'}``.
    ``run.train`` is a ``PretrainConfig``; ``strategy`` (an object) overrides ``run.runtime.strategy``.
    """

    def __init__(self, run: RunConfig, strategy: Optional[tf.distribute.Strategy] = None):
        config = stage_config(run, PretrainConfig, "Pretrainer")
        self.run = run
        self.config = config
        self.strategy = strategy or make_strategy(run.runtime.strategy)
        per_replica_batch(self.strategy, config.batch_size, "batch_size")
        self.forward_fn = functools.partial(forward, compute_dtype=compute_dtype(run.runtime.precision))
        self.model, self.step, self.optimizer = make_trainer_state(
            run, self.strategy, config.seed, lambda step: lambda: learning_rate_at(step, config))
        self._step_fn = tf.function(self._distributed_step)
        self._output_fn = tf.function(lambda ilr: self.forward_fn(self.model.trainable_variables, ilr))

    def _replica_step(self, ilr: tf.Tensor, hr: tf.Tensor) -> tf.Tensor:
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss = l1_loss(hr, self.forward_fn(variables, ilr))
            # The global loss is the mean over replicas' means; Keras sums the gradients.
            part = loss / self.strategy.num_replicas_in_sync
            if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
                part = self.optimizer.scale_loss(part)
        self.optimizer.apply_gradients(zip(tape.gradient(part, variables), variables))
        return loss

    def _distributed_step(self, ilr, hr) -> Dict[str, tf.Tensor]:
        rate = learning_rate_at(self.step, self.config)
        losses = self.strategy.run(self._replica_step, args=(ilr, hr))
        loss = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)
        self.step.assign_add(1)
        norm = tf.linalg.global_norm([tf.convert_to_tensor(v) for v in self.model.trainable_variables])
        return {"loss": loss, "learning_rate": rate, "weight_norm": norm}  # all checked for NaN/Inf

    def train_step(self, batch: Sequence[tf.Tensor]) -> Dict[str, np.ndarray]:
        ilr, hr = split_across_replicas(self.strategy, tuple(batch))
        return {k: v.numpy() for k, v in self._step_fn(ilr, hr).items()}

    def images(self, batch: Sequence[tf.Tensor], max_images: int = 4) -> Dict[str, tf.Tensor]:
        """Input, output and label of the first images of ``batch`` (the reference's summaries)."""
        ilr, hr = (tf.convert_to_tensor(x)[:max_images] for x in batch)
        return {"1. Input": ilr, "2. Output": self._output_fn(ilr), "3. Label": hr}


def run_pretraining(run: RunConfig, directory: str, *, source: Any = None,
                    strategy: Optional[tf.distribute.Strategy] = None,
                    requested_step: Optional[int] = None, guard: Optional[SignalGuard] = None
                    ) -> LoopResult:
    """Pretrain into the run folder ``directory`` until ``run.train.max_steps`` steps.

    ``source``: pretraining records (default ``run.train.tfrecord_path``) or a ``tf.data.Dataset`` of
    ``(hr, lr)`` pairs.  Starts from random weights (seed ``run.train.seed``) or resumes the folder's
    latest checkpoint (``requested_step`` must then match it, and ``run`` the folder's configuration,
    as for meta-training).  Raises ``NonFiniteLossError`` (nothing saved) when the loss becomes NaN
    or Inf.
    """
    from mzsr_tf.data.pipelines import pretrain_pairs
    strategy = strategy or make_strategy(run.runtime.strategy)
    # the records are read and checked before the run folder is made
    source = pretrain_pairs(run.train.tfrecord_path if source is None else source, run.train)
    return train_in_folder(run, directory, strategy, lambda chief: _pretrain_locked(
        run, directory, source, strategy, chief, requested_step, guard))


def _pretrain_locked(run: RunConfig, directory: str, source: Any, strategy: tf.distribute.Strategy,
                     chief: bool, requested_step: Optional[int], guard: Optional[SignalGuard]) -> LoopResult:
    config = run.train
    trainer = Pretrainer(run, strategy)
    source = config.tfrecord_path if source is None else source
    state = open_run_state(directory, run, trainer.step, strategy, chief,
                           model=trainer.model, optimizer=trainer.optimizer)
    try:
        return _pretrain_loop(run, trainer, source, state, requested_step, guard)
    finally:
        state.close()


def _pretrain_loop(run: RunConfig, trainer: Pretrainer, source: Any, state: RunState,
                   requested_step: Optional[int], guard: Optional[SignalGuard]) -> LoopResult:
    config = run.train
    resumed = state.resume(requested_step)
    log.info("[*] %s", f"resumed {resumed} at step {state.current_step}" if resumed
             else f"starting from random weights (seed {config.seed})")
    check_workers_agree(trainer.strategy, state, trainer.model.trainable_variables)
    state.write_config()

    def report(step: int, metrics: Mapping[str, np.ndarray], batch) -> None:
        log.info("Iteration: %d Loss: %.6f LR: %.3g Time: %.2f (%.3f steps/s, data wait %.0f%%)",
                 step, metrics["loss"], metrics["learning_rate"], metrics["seconds"],
                 metrics["steps_per_second"], 100 * metrics["data_wait_share"])
        write_scalars(state.writer, step, {"loss": metrics["loss"],
                                           "learning_rate": metrics["learning_rate"],
                                           "time/steps_per_second": metrics["steps_per_second"],
                                           "time/data_wait_share": metrics["data_wait_share"]})
        write_images(state.writer, step, trainer.images(batch))

    from mzsr_tf.data.pipelines import pretrain_dataset

    batches = iter(pretrain_dataset(source, config, config.seed, start_step=state.current_step))
    settings = LoopSettings(config.max_steps, config.print_every, config.save_every)
    return run_loop(trainer.train_step, batches, state, settings, report, guard)
