"""Sensitive-word lists: admin import/export of text files, the "test a text" page, the CSV resource, disabled
lists and directions, and the versioned matcher cache (in this process and in another one, through Redis)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from tablib import Dataset

from core import sensitive
from core.admin_sensitive import SensitiveWordResource
from core.models import AuditLog, SensitiveWord, SensitiveWordList

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(redis_clean):
    sensitive.cache_reset()
    yield redis_clean
    sensitive.cache_reset()


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "a-long-password-1")
    client.force_login(user)
    return client


def _list(name="demo", **fields) -> SensitiveWordList:
    return SensitiveWordList.objects.create(name=name, **fields)


def _words(word_list, *rows):
    for text, category, action in rows:
        SensitiveWord.objects.create(word_list=word_list, text=text, category=category, action=action)


@pytest.mark.django_db
def test_admin_imports_a_text_file_and_exports_it_again(admin_client, fresh, django_capture_on_commit_callbacks):
    word_list = _list()
    _words(word_list, ("加微信", "旧类别", "flag"), ("不在文件里", "x", "flag"))
    body = "\ufeff# 联系方式\n加微信\t引流\tmask\nvx\n\n代开发票\t违禁\t屏蔽\n12315\t投诉\thandoff\n"
    url = reverse("admin:core_sensitive_import", args=[word_list.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url,
            {
                "file": SimpleUploadedFile("words.txt", body.encode("utf-8"), content_type="text/plain"),
                "default_category": "引流",
                "default_action": "flag",
                "replace": "on",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    rows = set(SensitiveWord.objects.filter(word_list=word_list).values_list("text", "category", "action"))
    assert rows == {
        ("加微信", "引流", "mask"),  # updated
        ("vx", "引流", "flag"),  # defaults
        ("代开发票", "违禁", "block"),  # Chinese action name
        ("12315", "投诉", "handoff"),
    }  # "不在文件里" deleted (replace)
    word_list.refresh_from_db()
    assert word_list.version == 2
    entry = AuditLog.objects.get(action="import", target_model="core.sensitivewordlist")
    assert entry.after == {"created": 3, "updated": 1, "unchanged": 0, "deleted": 1}
    # the workers' matcher switched: the cache sees the new version
    assert sensitive.text_scan("可以 代*开 发票 吗", "out").blocked

    export = admin_client.get(reverse("admin:core_sensitive_export", args=[word_list.pk]))
    assert export.status_code == 200 and export["Content-Type"].startswith("text/plain")
    lines = export.content.decode("utf-8").splitlines()
    assert "代开发票\t违禁\tblock" in lines and len(lines) == 4
    assert AuditLog.objects.filter(action="export", target_model="core.sensitivewordlist").exists()


@pytest.mark.django_db
def test_a_file_with_a_bad_line_imports_nothing(admin_client, fresh):
    word_list = _list()
    body = "加微信\t引流\tmask\n赌博\t违禁\tdelete-everything\n"
    response = admin_client.post(
        reverse("admin:core_sensitive_import", args=[word_list.pk]),
        {"file": SimpleUploadedFile("w.txt", body.encode()), "default_action": "flag"},
    )
    assert response.status_code == 200
    assert "delete-everything" in response.content.decode()
    assert not SensitiveWord.objects.exists()
    latin1 = admin_client.post(
        reverse("admin:core_sensitive_import", args=[word_list.pk]),
        {"file": SimpleUploadedFile("w.txt", "加微信".encode("gb18030")), "default_action": "flag"},
    )
    assert latin1.status_code == 200 and not SensitiveWord.objects.exists()


@pytest.mark.django_db
def test_the_test_a_text_page_shows_hits_and_the_masked_text(admin_client, fresh):
    _words(_list(), ("vx", "引流", "mask"), ("加微信", "引流", "flag"))
    response = admin_client.post(
        reverse("admin:core_sensitive_test"), {"text": "加 微😀信 或 ＶＸ：abc", "direction": "in"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert '<span id="sensitive-action">mask</span>' in page
    assert "加 微😀信 或 ＊＊：abc" in page  # mask keeps everything else as written
    assert "加微信" in page and "引流" in page


@pytest.mark.django_db
def test_admin_inline_save_moves_the_version(admin_client, fresh, django_capture_on_commit_callbacks):
    word_list = _list()
    url = reverse("admin:core_sensitivewordlist_change", args=[word_list.pk])
    data = {
        "name": "demo",
        "enabled": "on",
        "direction": "both",
        "allow_phrases": "",
        "words-TOTAL_FORMS": "1",
        "words-INITIAL_FORMS": "0",
        "words-MIN_NUM_FORMS": "0",
        "words-MAX_NUM_FORMS": "1000",
        "words-0-text": "刷单",
        "words-0-category": "违禁",
        "words-0-action": "block",
        "words-0-enabled": "on",
    }
    assert not sensitive.text_scan("刷单吗", "in").hits
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert SensitiveWordList.objects.get(pk=word_list.pk).version == 2
    assert sensitive.text_scan("刷单吗", "in").blocked
    assert AuditLog.objects.filter(action="change", target_model="core.sensitivewordlist").exists()


@pytest.mark.django_db
def test_csv_resource_creates_lists_by_name_and_moves_their_version(fresh, django_capture_on_commit_callbacks):
    dataset = Dataset(headers=["word_list", "text", "category", "action", "enabled"])
    dataset.append(["新词库", "赌博", "违禁", "block", "1"])
    dataset.append(["新词库", "vx", "引流", "mask", "1"])
    with django_capture_on_commit_callbacks(execute=True):
        result = SensitiveWordResource().import_data(dataset, dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    word_list = SensitiveWordList.objects.get(name="新词库")
    assert word_list.version == 2
    assert sensitive.text_scan("赌 博", "out").blocked


@pytest.mark.django_db
def test_disabled_lists_disabled_words_and_directions(fresh):
    off = _list("off", enabled=False)
    _words(off, ("赌博", "违禁", "block"))
    inbound_only = _list("in", direction="in")
    _words(inbound_only, ("vx", "引流", "mask"))
    both = _list("both")
    SensitiveWord.objects.create(word_list=both, text="刷单", category="违禁", action="block", enabled=False)
    assert not sensitive.text_scan("赌博 刷单", "in").hits
    assert sensitive.text_scan("加vx", "in").masked_text == "加＊＊"
    assert not sensitive.text_scan("加vx", "out").hits  # the list applies to customer messages only


@pytest.mark.django_db
def test_pinyin_initials_and_allow_phrases_per_list(fresh):
    _words(
        _list("py", pinyin_initials=True, allow_phrases="三级跳\n"), ("微信", "引流", "flag"), ("三级", "x", "block")
    )
    hit = sensitive.text_scan("加我 w x", "in").hits[0]
    assert (hit.word, hit.via_pinyin) == ("微信", True)
    assert not sensitive.text_scan("他是三级跳冠军", "in").hits
    assert sensitive.text_scan("三级片", "in").blocked


@pytest.mark.django_db
def test_a_version_change_in_redis_switches_the_matcher_and_rebuilds_only_changed_lists(fresh, settings):
    settings.KEFU_SENSITIVE_RECHECK_SECONDS = 0
    a, b = _list("a"), _list("b")
    _words(a, ("赌博", "违禁", "block"))
    _words(b, ("vx", "引流", "mask"))
    assert sensitive.text_scan("赌博", "in").blocked
    kept = dict(sensitive._cache._state.by_list)
    # a row changed without telling anyone: the process keeps its matcher (that is what the version is for)
    SensitiveWord.objects.filter(text="赌博").update(action="flag")
    assert sensitive.text_scan("赌博", "in").blocked
    # the service moves the list's version and Redis' key (here by hand, as on_commit would)
    SensitiveWordList.objects.filter(pk=a.pk).update(version=2)
    sensitive.version_bump()
    assert str(sensitive.text_scan("赌博", "in").action) == "flag"
    now = sensitive._cache._state.by_list
    assert now[(b.pk, 1)] is kept[(b.pk, 1)]  # the unchanged list was not rebuilt
    assert now[(a.pk, 2)] is not kept[(a.pk, 1)]


@pytest.mark.django_db
def test_the_redis_key_is_read_at_most_once_per_interval(fresh, settings):
    settings.KEFU_SENSITIVE_RECHECK_SECONDS = 30
    _words(_list(), ("赌博", "违禁", "block"))
    assert sensitive.text_scan("赌博", "in").blocked
    fresh.incr(sensitive.VERSION_KEY)  # another process changed a list ...
    SensitiveWordList.objects.all().delete()
    assert sensitive.text_scan("赌博", "in").blocked  # ... seen only after the interval
    sensitive._cache.expire()
    assert not sensitive.text_scan("赌博", "in").hits


CHILD = """
import sys, json, django
django.setup()
from core import sensitive
for line in sys.stdin:
    result = sensitive.text_scan(line.strip(), "out")
    print(json.dumps({"action": str(result.action)}), flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_another_process_switches_after_a_committed_change(fresh, settings):
    """A real second process on the same test database and Redis picks the change up without a restart."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:

        def ask(text: str) -> str:
            child.stdin.write(text + "\n")
            child.stdin.flush()
            return json.loads(child.stdout.readline())["action"]

        assert ask("这里可以代开发票") == "none"
        word_list = _list("live")
        sensitive.words_import(word_list=word_list, text="代开发票\t违禁\tblock\n")  # commits, bumps after commit
        deadline = time.monotonic() + 10
        while ask("这里可以代开发票") != "block":
            assert time.monotonic() < deadline, "the other process never switched"
            time.sleep(0.2)
    finally:
        child.stdin.close()
        child.wait(timeout=10)


def test_parse_word_lines_defaults_aliases_and_errors():
    rows, errors = sensitive.parse_word_lines(
        "加微信\n  \n# x\nvx\t\t打码\n赌博\t违禁\tBLOCK\n坏\tc\tnope\n", default_category="引流"
    )
    assert rows == {"加微信": ("引流", "flag"), "vx": ("引流", "mask"), "赌博": ("违禁", "block")}
    assert errors == ["6: unknown action 'nope'"]


@pytest.mark.django_db
def test_admin_pages_render_and_hits_can_be_marked_reviewed(admin_client, fresh):
    word_list = _list()
    _words(word_list, ("赌博", "违禁", "block"))
    hit = sensitive.hit_record(direction="out", result=sensitive.text_scan("赌博", "out"), message_id=7)
    for url in (
        reverse("admin:core_sensitivewordlist_changelist"),
        reverse("admin:core_sensitivewordlist_change", args=[word_list.pk]),
        reverse("admin:core_sensitive_import", args=[word_list.pk]),
        reverse("admin:core_sensitive_test"),
        reverse("admin:core_sensitiveword_changelist"),
        reverse("admin:core_sensitiveword_import"),
        reverse("admin:core_sensitivehit_changelist"),
        reverse("admin:core_sensitivehit_change", args=[hit.pk]),
    ):
        assert admin_client.get(url).status_code == 200, url
    assert "赌博（违禁，block）" in admin_client.get(reverse("admin:core_sensitivehit_changelist")).content.decode()
    response = admin_client.post(
        reverse("admin:core_sensitivehit_changelist"),
        {"action": "mark_reviewed", "_selected_action": [hit.pk]},
    )
    assert response.status_code == 302
    hit.refresh_from_db()
    assert hit.reviewed and hit.reviewed_by == "root" and hit.reviewed_at is not None
    assert AuditLog.objects.filter(action="action:mark_reviewed").exists()
