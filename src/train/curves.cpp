// plot_training_curves (declared in densenet/train/metrics.h): the run directory's curve image.
// cairo draws and encodes the PNG; the axis and tick layout is the few lines of arithmetic below
// because cairo is a drawing library, not a plotting one (PLplot would add a second dependency
// and its own global state for two line charts).
#include <c10/util/Exception.h>
#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "densenet/io/atomic_file.h"
#include "densenet/train/metrics.h"

namespace densenet::train {

namespace {

constexpr int kWidth = 1200;
constexpr int kHeight = 480;

struct Color {
  double r, g, b;
};
constexpr Color kTrain{0.12, 0.47, 0.71};  // matplotlib's tab:blue
constexpr Color kEval{1.00, 0.50, 0.05};   // tab:orange
constexpr Color kGrid{0.88, 0.88, 0.88};
constexpr Color kInk{0.15, 0.15, 0.15};

struct Series {
  std::string label;
  Color color;
  bool dashed;
  std::vector<double> x, y;  // NaN y: no point
};

struct Rect {
  double x, y, w, h;
};

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` intervals.
double nice_step(double span, int target) {
  const double raw = span / target;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * power >= raw) return m * power;
  }
  return 10 * power;
}

std::string tick_label(double value, double step) {
  char text[32];
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  std::snprintf(text, sizeof(text), "%.*f", decimals, std::abs(value) < step * 1e-6 ? 0.0 : value);
  return text;
}

void set_color(cairo_t* cr, Color c) {
  cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

/// Draws `text` with its anchor point at (x, y): ax, ay in {0, 0.5, 1} (left/centre/right,
/// top/middle/bottom of the text's extents).
void draw_text(cairo_t* cr, const std::string& text, double x, double y, double ax, double ay) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, text.c_str(), &e);
  cairo_move_to(cr, x - e.x_bearing - ax * e.width, y - e.y_bearing - ay * e.height);
  cairo_show_text(cr, text.c_str());
}

// A panel's data ranges and where they land in its area, inset by a few pixels so that markers
// at the range's ends stay whole.
struct Axes {
  Rect area;
  double x_min = 1, x_max = 2, x_step = 1;
  double y_min = 0, y_max = 1, y_step = 1;
  static constexpr double kInset = 8;
  double px(double x) const {
    return area.x + kInset + (x - x_min) / (x_max - x_min) * (area.w - 2 * kInset);
  }
  double py(double y) const {
    return area.y + area.h - kInset - (y - y_min) / (y_max - y_min) * (area.h - 2 * kInset);
  }
};

// x covers epochs 1..last (at least one unit wide); y covers the finite values with a 5% margin,
// clamped to [y_floor, y_ceiling], widened to whole ticks.
Axes fit_axes(Rect area, const std::vector<Series>& series, int64_t last_epoch, double y_floor,
              double y_ceiling) {
  Axes axes;
  axes.area = area;
  axes.x_max = std::max<double>(2, static_cast<double>(last_epoch));
  if (last_epoch <= 1) axes.x_min = 0;
  double y_min = std::numeric_limits<double>::infinity(), y_max = -y_min;
  for (const Series& s : series) {
    for (const double y : s.y) {
      if (std::isfinite(y)) y_min = std::min(y_min, y), y_max = std::max(y_max, y);
    }
  }
  if (!std::isfinite(y_min)) y_min = y_floor, y_max = std::min(y_ceiling, y_floor + 1);
  const double margin = std::max(0.05 * (y_max - y_min), 1e-3 * std::max(1.0, std::abs(y_max)));
  y_min = std::max(y_floor, y_min - margin);
  y_max = std::min(y_ceiling, y_max + margin);
  if (y_max <= y_min) y_max = y_min + 1;
  axes.y_step = nice_step(y_max - y_min, 5);
  axes.y_min = std::floor(y_min / axes.y_step) * axes.y_step;
  axes.y_max = std::ceil(y_max / axes.y_step) * axes.y_step;
  axes.x_step = std::max(1.0, nice_step(axes.x_max - axes.x_min, 8));
  return axes;
}

// Grid lines with their tick labels, the axes box and the axis labels.
void draw_grid(cairo_t* cr, const Axes& axes, const std::string& y_label) {
  const Rect& area = axes.area;
  cairo_set_font_size(cr, 13);
  cairo_set_line_width(cr, 1);
  for (double y = axes.y_min; y <= axes.y_max + axes.y_step * 1e-6; y += axes.y_step) {
    set_color(cr, kGrid);
    cairo_move_to(cr, area.x, std::round(axes.py(y)) + 0.5);
    cairo_line_to(cr, area.x + area.w, std::round(axes.py(y)) + 0.5);
    cairo_stroke(cr);
    set_color(cr, kInk);
    draw_text(cr, tick_label(y, axes.y_step), area.x - 8, axes.py(y), 1, 0.5);
  }
  for (double x = std::ceil(axes.x_min / axes.x_step) * axes.x_step; x <= axes.x_max + 1e-9;
       x += axes.x_step) {
    set_color(cr, kGrid);
    cairo_move_to(cr, std::round(axes.px(x)) + 0.5, area.y);
    cairo_line_to(cr, std::round(axes.px(x)) + 0.5, area.y + area.h);
    cairo_stroke(cr);
    set_color(cr, kInk);
    draw_text(cr, tick_label(x, 1), axes.px(x), area.y + area.h + 8, 0.5, 0);
  }
  set_color(cr, kInk);
  cairo_rectangle(cr, area.x + 0.5, area.y + 0.5, area.w, area.h);
  cairo_stroke(cr);
  cairo_set_font_size(cr, 14);
  draw_text(cr, "epoch", area.x + area.w / 2, area.y + area.h + 30, 0.5, 0);
  cairo_save(cr);
  cairo_translate(cr, area.x - 62, area.y + area.h / 2);
  cairo_rotate(cr, -M_PI / 2);
  draw_text(cr, y_label, 0, 0, 0.5, 0.5);
  cairo_restore(cr);
}

// Lines (broken at missing values) and point markers, clipped to the axes.
void draw_series(cairo_t* cr, const Axes& axes, const std::vector<Series>& series) {
  cairo_save(cr);
  cairo_rectangle(cr, axes.area.x, axes.area.y, axes.area.w, axes.area.h);
  cairo_clip(cr);
  for (const Series& s : series) {
    set_color(cr, s.color);
    cairo_set_line_width(cr, 2);
    const double dash[] = {7, 4};
    cairo_set_dash(cr, dash, s.dashed ? 2 : 0, 0);
    bool drawing = false;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) {
        drawing = false;
        continue;
      }
      if (drawing) {
        cairo_line_to(cr, axes.px(s.x[i]), axes.py(s.y[i]));
      } else {
        cairo_move_to(cr, axes.px(s.x[i]), axes.py(s.y[i]));
      }
      drawing = true;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      cairo_arc(cr, axes.px(s.x[i]), axes.py(s.y[i]), 3, 0, 2 * M_PI);
      cairo_fill(cr);
    }
  }
  cairo_restore(cr);
}

// The legend in a corner (top right for loss, which falls; bottom right for accuracy, which
// rises).
void draw_legend(cairo_t* cr, const Rect& area, const std::vector<Series>& series, bool at_top) {
  cairo_set_font_size(cr, 13);
  const double row = 20, box_w = 150, box_h = row * static_cast<double>(series.size()) + 10;
  const double bx = area.x + area.w - box_w - 10;
  const double by = at_top ? area.y + 10 : area.y + area.h - box_h - 10;
  cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
  cairo_rectangle(cr, bx, by, box_w, box_h);
  cairo_fill_preserve(cr);
  set_color(cr, kGrid);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
  for (size_t i = 0; i < series.size(); ++i) {
    const double y = by + 5 + row * (static_cast<double>(i) + 0.5);
    set_color(cr, series[i].color);
    cairo_set_line_width(cr, 2);
    const double dash[] = {7, 4};
    cairo_set_dash(cr, dash, series[i].dashed ? 2 : 0, 0);
    cairo_move_to(cr, bx + 8, y);
    cairo_line_to(cr, bx + 36, y);
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    set_color(cr, kInk);
    draw_text(cr, series[i].label, bx + 44, y, 0, 0.5);
  }
}

void draw_panel(cairo_t* cr, Rect area, const std::string& y_label,
                const std::vector<Series>& series, int64_t last_epoch, bool legend_at_top,
                double y_floor, double y_ceiling) {
  const Axes axes = fit_axes(area, series, last_epoch, y_floor, y_ceiling);
  draw_grid(cr, axes, y_label);
  draw_series(cr, axes, series);
  draw_legend(cr, area, series, legend_at_top);
}

cairo_status_t append_png(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

void plot_training_curves(const std::vector<EpochRecord>& history, const std::string& png_path,
                          const std::string& title) {
  std::vector<double> epochs;
  Series train_loss{"train", kTrain, false, {}, {}}, eval_loss{"test", kEval, false, {}, {}};
  Series train_top1{"train top-1", kTrain, false, {}, {}};
  Series eval_top1{"test top-1", kEval, false, {}, {}};
  Series eval_top5{"test top-5", kEval, true, {}, {}};
  for (const EpochRecord& r : history) {
    const double e = static_cast<double>(r.epoch);
    for (Series* s : {&train_loss, &eval_loss, &train_top1, &eval_top1, &eval_top5}) {
      s->x.push_back(e);
    }
    train_loss.y.push_back(r.train_loss);
    eval_loss.y.push_back(r.eval_loss);
    train_top1.y.push_back(r.train_top1);
    eval_top1.y.push_back(r.eval_top1);
    eval_top5.y.push_back(r.eval_top5);
  }
  const int64_t last_epoch = history.empty() ? 1 : history.back().epoch;

  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, kWidth, kHeight);
  cairo_t* cr = cairo_create(surface);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  set_color(cr, kInk);
  cairo_set_font_size(cr, 17);
  draw_text(cr, title, kWidth / 2.0, 14, 0.5, 0);

  const Rect left{95, 50, 470, 360}, right{715, 50, 470, 360};
  const double inf = std::numeric_limits<double>::infinity();
  draw_panel(cr, left, "loss (mean cross-entropy)", {train_loss, eval_loss}, last_epoch, true, 0,
             inf);
  draw_panel(cr, right, "accuracy (%)", {train_top1, eval_top1, eval_top5}, last_epoch, false, 0,
             100);

  std::string png;
  const cairo_status_t drawn = cairo_status(cr);
  const cairo_status_t encoded = drawn == CAIRO_STATUS_SUCCESS
                                     ? cairo_surface_write_to_png_stream(surface, append_png, &png)
                                     : drawn;
  cairo_destroy(cr);
  cairo_surface_destroy(surface);
  TORCH_CHECK(encoded == CAIRO_STATUS_SUCCESS, "cannot draw the training curves for '", png_path,
              "': cairo says ", cairo_status_to_string(encoded));
  write_file_atomically(png_path, png);
}

}  // namespace densenet::train
