// Your own images as a data set (`--dataset folder:DIR`): one sub-folder of PNG images per class, the classes in the
// sorted order of the sub-folder names (class 0 first). When DIR has both train/ and test/ sub-folders, they are the
// training and the test set; otherwise DIR is both. Every image must have the same size and kind (grey, or colour:
// alpha is dropped); grey images are normalised as MNIST's, colour ones as CIFAR-10's (datasets/dataset.h). The
// classes take turns in the data set's order, so the first N images cover every class. IoError, naming the file,
// for a folder without classes or images, an unreadable or corrupt PNG, or an image of another size or kind.
#pragma once
#include <string>

#include "datasets/dataset.h"

namespace sl::data {

Dataset load_folder(const std::string& dir, bool train, int64_t limit = -1);

}  // namespace sl::data
