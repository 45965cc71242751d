// Torch-free per-step update: load both towers' training .pte with the ExecuTorch C++ runtime from the pip wheel
// (libexecutorch.so + libexecutorch_kernels_optimized.so, no libtorch), run forward+backward, apply
// p -= 1e-4 * g in place on the program's own weights, time it, print VmHWM.
// usage: ./et_step <dir> <suffix> <steps>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
// the wheel ships no threadpool.h: declare the two symbols libexecutorch_threadpool.so exports
namespace executorch::extension::threadpool {
class ThreadPool { public: bool _unsafe_reset_threadpool(unsigned int); };
ThreadPool* get_threadpool();
}
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

using namespace executorch::extension;
using executorch::runtime::EValue;

static double hwm_mb(const char* key) {
  std::ifstream f("/proc/self/status"); std::string l;
  while (std::getline(f, l)) if (l.rfind(key, 0) == 0) return std::stod(l.substr(strlen(key) + 1)) / 1024.0;
  return -1;
}

static std::vector<float> pattern(size_t n, float phase) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; i++) v[i] = std::sin(0.37f * i + phase);
  return v;
}

struct Tower {
  std::unique_ptr<Module> m; int64_t gi, pi; std::vector<std::vector<float>> data; std::vector<TensorPtr> in;
  Tower(const std::string& path, std::vector<std::vector<int32_t>> shapes) {
    m = std::make_unique<Module>(path, Module::LoadMode::File);
    gi = m->execute("__et_training_gradients_index_forward").get()[0].toInt();
    pi = m->execute("__et_training_parameters_index_forward").get()[0].toInt();
    data.reserve(shapes.size());
    for (size_t k = 0; k < shapes.size(); k++) {
      size_t n = 1; for (auto s : shapes[k]) n *= s;
      data.push_back(pattern(n, (float)k));
      in.push_back(from_blob(data.back().data(), shapes[k]));
    }
  }
  double step(bool update, double* gsum) {
    std::vector<EValue> args(in.begin(), in.end());
    auto r = m->execute("forward", args);
    if (!r.ok()) { fprintf(stderr, "execute failed: 0x%x\n", (int)r.error()); exit(1); }
    auto& out = *r;
    if (gsum) { *gsum = 0; for (int64_t i = gi; i < pi; i++) { auto t = out[i].toTensor(); const float* g = t.const_data_ptr<float>(); for (ssize_t j = 0; j < t.numel(); j++) *gsum += std::fabs(g[j]); } }
    if (update)
      for (int64_t i = gi; i < pi; i++) {
        auto g = out[i].toTensor(); auto p = out[pi + (i - gi)].toTensor();
        float* pp = p.mutable_data_ptr<float>(); const float* gg = g.const_data_ptr<float>();
        for (ssize_t j = 0; j < p.numel(); j++) pp[j] -= 1e-4f * gg[j];
      }
    return out[0].toTensor().const_data_ptr<float>()[0];
  }
};

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "/tmp/et_work/pte", suf = argc > 2 ? argv[2] : "_fold";
  int steps = argc > 3 ? atoi(argv[3]) : 500;
  printf("start VmHWM %.1f MB\n", hwm_mb("VmHWM:"));
  ::executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(1);
  Tower d(dir + "/discomfort" + suf + ".pte", {{1, 6, 24, 32}, {1, 10}, {1, 112}, {1, 8}});
  Tower p(dir + "/policy" + suf + ".pte", {{1, 6, 24, 32}, {1, 10}, {1, 112}, {1, 330}, {1, 118}});
  double gd, gp;
  double ld = d.step(false, &gd), lp = p.step(false, &gp);
  printf("check: discomfort loss %.7g sum|g| %.7g ; policy loss %.7g sum|g| %.7g\n", ld, gd, lp, gp);
  printf("after load + first step VmHWM %.1f MB\n", hwm_mb("VmHWM:"));
  for (auto* t : {&d, &p}) {
    for (int i = 0; i < 50; i++) t->step(false, nullptr);
    std::vector<double> ts;
    for (int i = 0; i < steps; i++) {
      auto t0 = std::chrono::steady_clock::now(); t->step(false, nullptr);
      ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ts.begin(), ts.end());
    printf("%s fwd_bwd median %.3f ms\n", t == &d ? "discomfort" : "policy", ts[ts.size() / 2]);
  }
  std::vector<double> ts;
  for (int i = 0; i < steps; i++) {
    auto t0 = std::chrono::steady_clock::now(); d.step(true, nullptr); p.step(true, nullptr);
    ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  printf("both towers + in-place SGD update median %.3f ms; final VmHWM %.1f MB\n", ts[ts.size() / 2], hwm_mb("VmHWM:"));
}
