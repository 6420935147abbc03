"""The Official Account and WeCom 微信客服 adapters share their API client set-up (bots.channels.oa.WeChatApiAdapter):
each keeps its own default API host, token endpoint, token key and expired-token errcodes."""

import pytest

from bots.channels.base import ChannelError
from bots.channels.oa import OA_TOKEN_ERRCODES, OfficialAccountAdapter
from bots.channels.wecom_kf import WECOM_TOKEN_ERRCODES, WecomKfAdapter


def test_each_kind_keeps_its_own_api_host_and_token_endpoint():
    oa = OfficialAccountAdapter(slug="oa1", config={"app_id": "wx1", "app_secret": "s1"}, token_store=object())
    kf = WecomKfAdapter(slug="kf1", config={"corp_id": "ww1", "secret": "s2"}, token_store=object())
    assert (oa.api.api_base, oa.api.token_path) == ("https://api.weixin.qq.com", "/cgi-bin/token")
    assert oa.api.token_params == {"grant_type": "client_credential", "appid": "wx1", "secret": "s1"}
    assert oa.api.token_key == "wechat:oa:wx1:access_token" and oa.api.token_errcodes == frozenset(OA_TOKEN_ERRCODES)
    assert (kf.api.api_base, kf.api.token_path) == ("https://qyapi.weixin.qq.com", "/cgi-bin/gettoken")
    assert kf.api.token_params == {"corpid": "ww1", "corpsecret": "s2"}
    assert kf.api.token_key.startswith("wechat:wecom:ww1:") and "s2" not in kf.api.token_key
    assert kf.api.token_errcodes == frozenset(WECOM_TOKEN_ERRCODES)
    assert oa.api is oa.api  # built once per adapter


def test_a_configured_api_base_wins_and_a_missing_secret_is_a_clear_error():
    kf = WecomKfAdapter(slug="kf2", config={"corp_id": "ww1", "secret": "s", "api_base": "http://127.0.0.1:9/"})
    assert kf.api.api_base == "http://127.0.0.1:9"
    with pytest.raises(ChannelError, match="has no 'app_secret' configured"):
        _ = OfficialAccountAdapter(slug="oa2", config={"app_id": "wx1"}, token_store=object()).api
