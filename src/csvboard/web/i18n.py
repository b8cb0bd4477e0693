"""UI text of the web pages: Japanese by default, English on request.

The language comes from ``?lang=ja|en`` (remembered in the ``csvboard_lang`` cookie), else
that cookie, else Japanese. Templates get ``t`` (this page's dictionary); the scripts get the
same dictionary as JSON, so every label lives here once.
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("ja", "en")
DEFAULT_LANGUAGE: Final = "ja"
LANG_COOKIE: Final = "csvboard_lang"

# key: (Japanese, English)
_TEXT: Final[dict[str, tuple[str, str]]] = {
    "app": ("csvboard", "csvboard"),
    "sign_in": ("サインイン", "Sign in"),
    "sign_out": ("サインアウト", "Sign out"),
    "token": ("APIトークン", "API token"),
    "token_help": (
        "管理者から受け取ったトークン（csvb_…）を入力してください。",
        "Enter the token (csvb_…) your administrator gave you.",
    ),
    "bad_token": ("トークンが無効です。", "That token is not valid."),
    "bad_csrf": (
        "フォームの有効期限が切れました。もう一度お試しください。",
        "The form expired. Please try again.",
    ),
    "signed_in_as": ("サインイン中", "Signed in as"),
    "role_admin": ("管理者", "admin"),
    "role_operator": ("オペレーター", "operator"),
    "role_viewer": ("閲覧者", "viewer"),
    "nav_runs": ("取込履歴", "Runs"),
    "nav_dashboards": ("ダッシュボード", "Dashboards"),
    "nav_kiosk": ("キオスク", "Kiosk"),
    "language": ("English", "日本語"),
    "runs_title": ("取込履歴", "Ingestion runs"),
    "upload_title": ("CSVをアップロードして取込", "Upload a CSV and start a run"),
    "dashboard": ("ダッシュボード", "Dashboard"),
    "run_kind": ("取込種別", "Run kind"),
    "file": ("ファイル", "File"),
    "start_run": ("取込開始", "Start run"),
    "kind_official_ingestion": ("正式取込（全件）", "Official (full snapshot)"),
    "kind_incremental_update": ("差分更新", "Incremental update"),
    "kind_appearance_supplement": ("補足情報", "Appearance supplement"),
    "mode_manual": ("手動", "manual"),
    "mode_scheduled": ("定期", "scheduled"),
    "status": ("状態", "Status"),
    "mode": ("実行方法", "Mode"),
    "all": ("すべて", "All"),
    "st_queued": ("待機中", "queued"),
    "st_running": ("実行中", "running"),
    "st_succeeded": ("成功", "succeeded"),
    "st_failed": ("失敗", "failed"),
    "st_partial": ("一部失敗", "partial"),
    "st_cancelled": ("取消", "cancelled"),
    "created_at": ("作成日時", "Created"),
    "started_at": ("開始", "Started"),
    "finished_at": ("終了", "Finished"),
    "requested_by": ("依頼者", "Requested by"),
    "counts": ("件数", "Counts"),
    "target": ("対象", "target"),
    "processed": ("処理済", "processed"),
    "success": ("成功", "success"),
    "failed": ("失敗", "failed"),
    "unprocessed": ("未処理", "unprocessed"),
    "more": ("さらに表示", "Show more"),
    "no_runs": ("取込はまだありません。", "No runs yet."),
    "run_detail": ("取込詳細", "Run detail"),
    "error_summary": ("エラー概要", "Error summary"),
    "sources": ("取込ファイル", "Sources"),
    "file_name": ("ファイル名", "File name"),
    "role": ("役割", "Role"),
    "encoding": ("文字コード", "Encoding"),
    "size": ("サイズ", "Size"),
    "items": ("行ごとの結果", "Items"),
    "line": ("行", "Line"),
    "key": ("キー", "Key"),
    "reason": ("理由", "Reason"),
    "message": ("内容", "Message"),
    "update_type": ("更新種別", "Update"),
    "no_items": ("記録された行はありません。", "No items recorded."),
    "events": ("イベント", "Events"),
    "lineage": ("再実行の系譜", "Lineage"),
    "parent": ("元の取込", "Parent"),
    "children": ("再実行", "Re-runs"),
    "none": ("なし", "none"),
    "retry": ("再実行", "Re-run"),
    "cancel": ("取消", "Cancel"),
    "confirm_cancel": ("この取込を取り消しますか？", "Cancel this run?"),
    "trace_id": ("トレースID", "Trace id"),
    "dashboards_title": ("ダッシュボードとフィード", "Dashboards and feeds"),
    "name": ("名前", "Name"),
    "kind": ("種類", "Kind"),
    "ingest_mode": ("取込方式", "Ingest mode"),
    "rows_active": ("有効行", "Active rows"),
    "rows_retired": ("廃止行", "Retired rows"),
    "feeds": ("フィード", "Feeds"),
    "source": ("取得元", "Source"),
    "location": ("場所", "Location"),
    "schedule": ("スケジュール", "Schedule"),
    "enabled": ("有効", "Enabled"),
    "yes": ("はい", "yes"),
    "no": ("いいえ", "no"),
    "last_success": ("最終取込成功", "Last successful ingestion"),
    "open_kiosk": ("キオスクを開く", "Open kiosk"),
    "kiosk_title": ("生産スケジュール", "Production schedule"),
    "search": ("検索（製番・品番・品名）", "Search (製番, 品番, 品名)"),
    "filter_all": ("すべて", "All"),
    "filter_open": ("未完了", "Open"),
    "filter_done": ("完了", "Done"),
    "overall": ("全体", "Overall"),
    "complete": ("完了", "Done"),
    "mark_complete": ("完了にする", "Mark done"),
    "mark_incomplete": ("完了を取り消す", "Undo done"),
    "note": ("メモ", "Note"),
    "due_date": ("納期", "Due date"),
    "order": ("加工順", "Order"),
    "process_order": ("工順", "Step"),
    "hours": ("所要時間", "Time"),
    "machine": ("機種", "Machine"),
    "pending": ("保存中…", "Saving…"),
    "write_failed": ("保存に失敗しました", "Not saved"),
    "write_refused": ("保存できません", "Refused"),
    "retry_write": ("再送信", "Retry"),
    "no_steps": ("表示する工程はありません。", "No steps to show."),
    "loading": ("読み込み中…", "Loading…"),
    "load_failed": ("読み込みに失敗しました", "Could not load"),
    "refresh": ("更新", "Refresh"),
    "never": ("まだありません", "never"),
    "unsaved_leave": (
        "保存されていない変更があります。",
        "Some changes are not saved yet.",
    ),
    "not_found": ("見つかりません", "Not found"),
    "upload_failed": ("アップロードに失敗しました", "Upload failed"),
    "progress": ("進捗", "Progress"),
}


def pick_language(query_value: str | None, cookie_value: str | None) -> str:
    for candidate in (query_value, cookie_value):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


def texts(lang: str) -> dict[str, str]:
    """Every UI string in ``lang`` (ja or en)."""
    index = 1 if lang == "en" else 0
    return {key: pair[index] for key, pair in _TEXT.items()}
