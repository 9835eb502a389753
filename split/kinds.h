// The built-in defense kinds, one file each; defense.cpp registers them in this order.
#pragma once
#include "split/defense.h"

namespace sl::kinds {

DefenseKind gaussian();  // noise.cpp
DefenseKind laplace();   // noise.cpp
DefenseKind dropout();   // dropout.cpp
// cis(): split/cis.h (CIS DP noise; needs a calibration)

// A level that must be a finite number in [lo, hi] (hi may be +inf), named in the error.
void check_level(const DefenseSpec& s, const char* what, double lo, double hi, bool hi_open = false);

}  // namespace sl::kinds
