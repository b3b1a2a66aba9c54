# posekit: `make demo` and `make test` set everything up on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PKGS := gfortran libusb-1.0-0 libgl1 libgomp1 cmake g++
STAMP := $(VENV)/.posekit-installed
# ROS 2 message packages posekit generates from .msg files (vision_msgs, tf2_msgs, posekit_msgs).
ROS_INTERFACES := $(VENV)/share/posekit_ros_interfaces.stamp
ROS_INTERFACE_SOURCES := $(wildcard ros_nodes/interfaces/*/msg/*.msg ros_nodes/interfaces/*/CMakeLists.txt ros_nodes/interfaces/*/package.xml ros_nodes/interfaces/cmake/*.cmake) ros_nodes/interfaces/build.py

.PHONY: setup demo test test-fast lint clean

setup: $(STAMP) $(ROS_INTERFACES)

$(STAMP): pyproject.toml
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[ros,dev]"
	touch $(STAMP)

$(ROS_INTERFACES): $(STAMP) $(ROS_INTERFACE_SOURCES)
	$(PY) ros_nodes/interfaces/build.py

demo: setup
	$(VENV)/bin/posekit demo --out demo_out

test: setup
	$(PY) -m pytest -q --timeout=900

lint: setup
	$(VENV)/bin/ruff check posekit ros_nodes tests

clean:
	rm -rf $(VENV) demo_out .pytest_cache build
