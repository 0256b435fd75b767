"""Every failure is one clear irc error, and no credential ever appears in it."""
from __future__ import annotations

import pytest
import swat

from irc.backends.viya import deploy as dep
from irc.backends.viya.deploy import (ActionFailed, ActionSetMissing, AuthenticationFailed,
                                      DeployError, LabelError, ServerUnreachable,
                                      WeightsNotVisible, connect, deploy)
from irc.errors import IrcError, IrcIOError
from tests.deploy.conftest import SECRET
from tests.deploy.fake_cas import FakeCAS, StandInViolation, factory


@pytest.fixture(autouse=True)
def credentials(monkeypatch):
    """Credentials the way swat reads them; none may leak into an irc message."""
    monkeypatch.setenv("CAS_USER", "alice")
    monkeypatch.setenv("CAS_PASSWORD", SECRET)
    for var in ("CAS_URL", "CAS_HOST", "CAS_HOSTNAME", "CAS_PORT"):
        monkeypatch.delenv(var, raising=False)


def _clean(err: IrcError) -> str:
    text = str(err)
    assert SECRET not in text and "alice" not in text, text
    assert isinstance(err, IrcError)
    return text


def ok_probe(host, port, timeout):
    return None


def test_connect_passes_host_port_protocol_and_short_retries():
    seen = []
    before = swat.get_option("cas.connection_retries")
    conn = connect("viya.example.com", 5570, "cas", cas_factory=factory("ok", seen=seen),
                   probe=ok_probe)
    assert isinstance(conn, FakeCAS)
    assert seen == [("viya.example.com", 5570, {"protocol": "cas"}, 1)]
    assert swat.get_option("cas.connection_retries") == before  # restored


def test_connect_url_keeps_the_url_for_swat():
    seen, probed = [], []
    connect("https://viya.example.com/cas-shared-default-http", cas_factory=factory("ok",
            seen=seen), probe=lambda h, p, t: probed.append((h, p)))
    assert probed == [("viya.example.com", 443)]
    assert seen[0][:3] == ("https://viya.example.com/cas-shared-default-http", 443,
                           {"protocol": "https"})


def test_unreachable_server_fails_fast_without_swat():
    def refused(host, port, timeout):
        raise ConnectionRefusedError(111, "Connection refused")

    seen = []
    with pytest.raises(ServerUnreachable, match="viya.example.com:5570.*refused") as err:
        connect("viya.example.com", 5570, cas_factory=factory("ok", seen=seen), probe=refused)
    assert seen == []  # swat.CAS was never called
    _clean(err.value)


def test_default_probe_is_a_plain_tcp_connect(monkeypatch):
    calls = []

    def fake_create_connection(address, timeout=None):
        calls.append((address, timeout))
        raise TimeoutError("timed out")

    monkeypatch.setattr(dep.socket, "create_connection", fake_create_connection)
    with pytest.raises(ServerUnreachable, match="timed out"):
        connect("viya.example.com", 5570, timeout=2.5, cas_factory=factory("ok"))
    assert calls == [(("viya.example.com", 5570), 2.5)]


@pytest.mark.parametrize("outcome,error", [("unreachable", ServerUnreachable),
                                           ("no_credentials", AuthenticationFailed),
                                           ("refused", AuthenticationFailed)])
def test_swat_failures_map_to_irc_errors(outcome, error):
    before = swat.get_option("cas.connection_retry_interval")
    with pytest.raises(error) as err:
        connect("viya.example.com", 5570, cas_factory=factory(outcome), probe=ok_probe)
    text = _clean(err.value)  # "refused" carries the password and user name: scrubbed
    if error is AuthenticationFailed:
        assert ".authinfo" in text and "CAS_PASSWORD" in text
    assert swat.get_option("cas.connection_retry_interval") == before
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_no_host_or_port():
    with pytest.raises(DeployError, match="no CAS server"):
        connect(cas_factory=factory("ok"), probe=ok_probe)
    with pytest.raises(DeployError, match="no port"):
        connect("viya.example.com", cas_factory=factory("ok"), probe=ok_probe)


def test_missing_action_set(small_cnn):
    conn = FakeCAS(missing_actionset=True)
    with pytest.raises(ActionSetMissing, match="deepLearn.*not loaded") as err:
        deploy(small_cnn, conn)
    _clean(err.value)
    assert conn.names() == ["builtins.loadActionSet"]


@pytest.mark.parametrize("raise_on_error", [False, True])
def test_failed_action_names_action_severity_and_messages(small_cnn, tmp_path, raise_on_error):
    conn = FakeCAS(caslibs={"CASUSER": str(tmp_path)}, fail="deepLearn.addLayer",
                   raise_on_error=raise_on_error)
    with pytest.raises(ActionFailed) as err:
        deploy(small_cnn, conn)
    text = _clean(err.value)
    assert err.value.action == "deepLearn.addLayer" and err.value.severity == 2
    assert "deepLearn.addLayer failed (severity 2" in text
    assert "injected failure of deepLearn.addLayer" in text
    assert conn.names()[-1] == "deepLearn.addLayer"  # stopped at the first failure


def test_server_message_with_credentials_is_scrubbed(small_cnn, tmp_path):
    conn = FakeCAS(caslibs={"CASUSER": str(tmp_path)})
    original = conn._deeplearn_buildmodel
    conn._deeplearn_buildmodel = lambda p: conn._error(
        "deepLearn.buildModel", [f"ERROR: user alice (password={SECRET}) may not write here"])
    with pytest.raises(ActionFailed) as err:
        deploy(small_cnn, conn)
    assert "may not write here" in _clean(err.value)
    conn._deeplearn_buildmodel = original


def test_unknown_caslib(small_cnn):
    with pytest.raises(ActionFailed, match="(?s)caslibInfo.*NOPE.*does not exist") as err:
        deploy(small_cnn, FakeCAS(), caslib="nope")
    assert "--caslib" in _clean(err.value)


def test_weights_not_visible_says_where_the_server_looked(small_cnn):
    conn = FakeCAS(caslibs={"CASUSER": "/cas/data/casuser/"})
    with pytest.raises(WeightsNotVisible) as err:
        deploy(small_cnn, conn, upload_weights=False)
    text = _clean(err.value)
    assert "small_cnn_weights.kerasmodel.h5 in caslib 'CASUSER' (/cas/data/casuser/)" in text
    assert "--server-path" in text and "--caslib" in text
    assert "/cas/data/casuser/small_cnn_weights.kerasmodel.h5" in text
    assert "deepLearn.buildModel" not in conn.names()  # refused before creating anything


def test_upload_impossible_without_a_shared_directory(small_cnn):
    with pytest.raises(WeightsNotVisible, match="does not see") as err:
        deploy(small_cnn, FakeCAS(), upload_weights=True)
    assert "swat has no call" in _clean(err.value)


def test_server_reports_the_file_missing(small_cnn, tmp_path):
    """The file is listed, yet the import action cannot open it (e.g. permissions)."""
    conn = FakeCAS(caslibs={"CASUSER": str(tmp_path)}, weights_missing=True)
    with pytest.raises(WeightsNotVisible, match="Keras model file was not found") as err:
        deploy(small_cnn, conn)
    assert f"({tmp_path})" in _clean(err.value)


def test_server_path_outside_the_caslib(small_cnn):
    with pytest.raises(WeightsNotVisible, match="not under caslib"):
        deploy(small_cnn, FakeCAS(), server_path="/elsewhere/w.h5")
    with pytest.raises(WeightsNotVisible, match="leaves caslib"):
        deploy(small_cnn, FakeCAS(), server_path="../w.h5")


def test_label_errors(small_cnn, tmp_path):
    with pytest.raises(LabelError, match="3 labels for an output layer of 10"):
        deploy(small_cnn, FakeCAS(), labels=["a", "b", "c"])
    bad = tmp_path / "labels.csv"
    bad.write_text("label_id,label\n0,a\n2,b\n")
    with pytest.raises(LabelError, match="label_id must run 0..1"):
        deploy(small_cnn, FakeCAS(), labels=bad)
    bad.write_text("label_id,label\n0,a\n0,b\n")
    with pytest.raises(LabelError, match="appears twice"):
        deploy(small_cnn, FakeCAS(), labels=bad)
    with pytest.raises(IrcIOError, match="cannot read the labels"):
        deploy(small_cnn, FakeCAS(), labels=tmp_path / "missing.txt")
    text = tmp_path / "labels.txt"
    text.write_text("".join(f"c{i}\n" for i in range(9)) + "\n\n")
    with pytest.raises(LabelError, match="9 labels"):
        deploy(small_cnn, FakeCAS(), labels=text)


def test_not_an_output_folder(tmp_path):
    with pytest.raises(IrcIOError, match="no model.json"):
        deploy(tmp_path, FakeCAS())


def test_the_stand_in_checks_what_irc_sends():
    """The checks are live: a wrong parameter or layer option fails loudly."""
    conn = FakeCAS()
    conn.retrieve("builtins.loadActionSet", actionSet="deepLearn")
    conn.retrieve("deepLearn.buildModel", model={"name": "m", "replace": True}, type="CNN")
    with pytest.raises(StandInViolation, match="not in its signature"):
        conn.retrieve("deepLearn.buildModel", model="m", modelType="CNN")
    with pytest.raises(StandInViolation, match=r"keys \['act'\] not in §3.2"):
        conn.retrieve("deepLearn.addLayer", model="m", name="p", srcLayers=["x"],
                      layer={"type": "pool", "width": 2, "height": 2, "stridevertical": 2,
                             "stridehorizontal": 2, "pool": "max", "act": "relu"})
    with pytest.raises(StandInViolation, match=r"must send \['includebias'\]"):
        conn.retrieve("deepLearn.addLayer", model="m", name="c", srcLayers=["x"],
                      layer={"type": "convo", "nfilters": 2, "width": 3, "height": 3,
                             "stridevertical": 1, "stridehorizontal": 1, "act": "relu"})
    with pytest.raises(StandInViolation, match="at least 2 srcLayers"):
        conn.retrieve("deepLearn.addLayer", model="m", name="r", srcLayers=["x"],
                      layer={"type": "residual", "act": "identity"})
