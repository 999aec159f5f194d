import re
import signal
import subprocess
import sys

import requests

from tests.conftest import ROOT


def test_sim_serve_runs_until_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "sim", "serve", "--port", "0", "--seed", "4",
         "--time-scale", "20", "--no-rate-limit"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = proc.stderr.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/v2)", first).group(1)
        assert "time scale 20" in first
        assert "depth2 CLOTHING" in proc.stderr.readline()
        body = requests.get(url + "/", timeout=5).json()
        assert body["status"].startswith("SpaceTraders is currently online")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.stderr.close()


def test_sim_serve_refuses_bad_settings():
    out = subprocess.run([sys.executable, "-m", "cli", "sim", "serve", "--faults", "429=5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "bad fault item '429=5'" in out.stderr


def test_demo_produces_a_depth_two_good_end_to_end(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cli", "--log-format", "json", "--db",
                          str(tmp_path / "demo.db"), "demo", "--no-rate-limit",
                          "--time-scale", "250"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "bought DEMO" in out.stdout and "(SHIP_LIGHT_SHUTTLE) for 88,853 credits" in out.stdout
    assert "completed: acquired" in out.stdout and "CLOTHING" in out.stdout
    assert "Status: COMPLETED" in out.stdout and "└── FABRICS [FABRICATE at" in out.stdout
