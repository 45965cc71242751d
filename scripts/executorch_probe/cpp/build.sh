#!/bin/sh
# builds the torch-free C++ per-step runner against the executorch wheel's headers and shared libs
ET=/tmp/etv/lib/python3.11/site-packages/executorch
g++ -O2 -std=c++17 -DC10_USING_CUSTOM_GENERATED_MACROS -I$ET/include -I$ET/include/executorch/runtime/core/portable_type/c10 \
  /tmp/et_work/cpp/et_step.cpp -o /tmp/et_work/cpp/et_step -L$ET/lib -Wl,--no-as-needed -lexecutorch -lexecutorch_kernels_optimized -lexecutorch_threadpool -Wl,-rpath,$ET/lib
