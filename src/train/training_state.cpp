#include "densenet/train/training_state.h"

#include "densenet/io/weights.h"
#include "densenet/train/optimizer.h"

#include <c10/util/Exception.h>

#include <cmath>

namespace densenet::train {
namespace {

pth::Value text(const std::string& value) {
  return pth::Value::string(value);
}

const pth::Value& field(const pth::Value& dict, const std::string& name,
                        const std::string& source) {
  const pth::Value* value = dict.is(pth::Value::Kind::Dict) ? dict.find(name) : nullptr;
  TORCH_CHECK(value != nullptr, "'", source, "' is not a densenet training checkpoint: no '", name,
              "' (train from scratch, or load plain weights with 'densenet eval')");
  return *value;
}

// A key that later versions added: its default when an older checkpoint lacks it.
int64_t count_or(const pth::Value& dict, const char* name, int64_t otherwise) {
  const pth::Value* value = dict.find(name);
  return value == nullptr ? otherwise : value->as_int();
}
double real_or(const pth::Value& dict, const char* name, double otherwise) {
  const pth::Value* value = dict.find(name);
  return value == nullptr ? otherwise : float_of(*value);
}

// A history record, keyed by metric_fields()' names.
pth::Value record_value(const EpochRecord& record) {
  pth::Value dict = pth::Value::dict();
  for (const MetricField& field : metric_fields()) {
    dict.set_item(text(field.name), field.count != nullptr
                                        ? pth::Value::integer(record.*field.count)
                                        : float_value(record.*field.real));
  }
  return dict;
}

// Lenient, as the history is only a record: a missing field reads as its default, or NaN.
EpochRecord record_from(const pth::Value& dict) {
  EpochRecord record;
  for (const MetricField& field : metric_fields()) {
    const pth::Value* value = dict.find(field.name);
    const double otherwise = field.if_missing.value_or(field.count != nullptr ? 0 : std::nan(""));
    field.set(record, value == nullptr ? otherwise : float_of(*value));
  }
  return record;
}

pth::Value partial_value(const EpochSums& sums) {
  pth::Value partial = pth::Value::dict();
  partial.set_item(text("loss_sum"), float_value(sums.loss_sum));
  partial.set_item(text("correct"), pth::Value::integer(sums.correct));
  partial.set_item(text("images"), pth::Value::integer(sums.images));
  partial.set_item(text("seconds"), float_value(sums.seconds));
  partial.set_item(text("wait_seconds"), float_value(sums.wait_seconds));
  partial.set_item(text("comm_seconds"), float_value(sums.comm_seconds));
  partial.set_item(text("skipped_steps"), pth::Value::integer(sums.skipped_steps));
  return partial;
}

EpochSums partial_from(const pth::Value& partial, const std::string& source) {
  EpochSums sums;
  sums.loss_sum = float_of(field(partial, "loss_sum", source));
  sums.correct = field(partial, "correct", source).as_int();
  sums.images = field(partial, "images", source).as_int();
  sums.seconds = float_of(field(partial, "seconds", source));
  sums.wait_seconds = float_of(field(partial, "wait_seconds", source));
  sums.comm_seconds = real_or(partial, "comm_seconds", 0);  // before 2026-12-04: not kept
  sums.skipped_steps = count_or(partial, "skipped_steps", 0);
  return sums;
}

}  // namespace

pth::Value to_checkpoint(const TrainingState& state) {
  pth::Value root = pth::Value::dict();
  const auto put = [&](const char* name, pth::Value value) { root.set_item(text(name), value); };
  put("model", state_dict_value(state.model));
  put("optimizer", state.optimizer);
  // torch.cuda.amp.GradScaler.state_dict()'s layout, under the key torchvision's references use.
  if (state.scaler) put("scaler", *state.scaler);
  if (state.model_ema) {  // timm's CheckpointSaver key: the averaged weights, for an exact resume
    put("state_dict_ema", state_dict_value(*state.model_ema));
    put("best_ema_top1", float_value(state.best_ema_top1));
    put("best_ema_epoch", pth::Value::integer(state.best_ema_epoch));
  }
  put("epoch", pth::Value::integer(state.epoch));
  put("next_batch", pth::Value::integer(state.next_batch));
  put("global_step", pth::Value::integer(state.global_step));
  pth::Value schedule = pth::Value::dict();
  schedule.set_item(text("lr_type"), text(state.lr_type));
  schedule.set_item(text("step"), pth::Value::integer(state.global_step));
  put("schedule", schedule);
  put("best_top1", float_value(state.best_top1));
  put("best_epoch", pth::Value::integer(state.best_epoch));
  put("elapsed_seconds", float_value(state.elapsed_seconds));
  put("partial_epoch", partial_value(state.partial));
  put("world_size", pth::Value::integer(state.world_size));
  pth::Value rng = pth::Value::dict();
  rng.set_item(text("torch_cpu"), pth::Value::tensor(state.rng));
  put("rng", rng);
  put("config", text(state.config_yaml));
  put("arch", text(state.arch));
  std::vector<pth::Value> classes;
  for (const auto& name : state.classes) classes.push_back(text(name));
  put("classes", pth::Value::list(std::move(classes)));
  std::vector<pth::Value> records;
  for (const auto& record : state.history) records.push_back(record_value(record));
  put("history", pth::Value::list(std::move(records)));
  put("num_parameters", pth::Value::integer(state.num_parameters));
  return root;
}

TrainingState from_checkpoint(const pth::Value& root, const std::string& source) {
  TrainingState state;
  state.config_yaml = field(root, "config", source).as_string();
  state.model = tensors_of(field(root, "model", source), source);
  state.optimizer = field(root, "optimizer", source);
  if (const pth::Value* scaler = root.find("scaler")) state.scaler = *scaler;
  if (const pth::Value* ema = root.find("state_dict_ema")) {
    state.model_ema = tensors_of(*ema, source);
    state.best_ema_top1 = float_of(field(root, "best_ema_top1", source));
    state.best_ema_epoch = field(root, "best_ema_epoch", source).as_int();
  }
  state.epoch = field(root, "epoch", source).as_int();
  state.next_batch = field(root, "next_batch", source).as_int();
  state.global_step = field(root, "global_step", source).as_int();
  state.partial = partial_from(field(root, "partial_epoch", source), source);
  state.rng = field(field(root, "rng", source), "torch_cpu", source).as_tensor();
  state.world_size = count_or(root, "world_size", 1);
  state.best_top1 = float_of(field(root, "best_top1", source));
  state.best_epoch = field(root, "best_epoch", source).as_int();
  state.elapsed_seconds = float_of(field(root, "elapsed_seconds", source));
  for (const auto& record : field(root, "history", source).elements()) {
    state.history.push_back(record_from(record));
  }
  if (const pth::Value* arch = root.find("arch")) state.arch = arch->as_string();
  if (const pth::Value* schedule = root.find("schedule"); schedule && schedule->find("lr_type")) {
    state.lr_type = schedule->find("lr_type")->as_string();
  }
  if (const pth::Value* classes = root.find("classes")) {
    for (const auto& name : classes->elements()) state.classes.push_back(name.as_string());
  }
  state.num_parameters = count_or(root, "num_parameters", 0);
  return state;
}

}  // namespace densenet::train
