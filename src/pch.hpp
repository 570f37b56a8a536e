// Precompiled for every source of the library: the heavy, stable headers.
#pragma once
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>
