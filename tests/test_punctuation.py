"""Chinese sentences take Chinese punctuation: no ASCII `,` `?` `!` `:` `;` after a Chinese
character where the sentence goes on in Chinese (or ends), in any page the middleware, the
emulator or the demo can show. Pages are rendered, then read as a visitor reads them: their
text, their attributes' text (placeholders, titles) and their scripts' strings."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .visitor_pages import demo_page_texts, middleware_pages, served_page_texts

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff01-\uff60"
# A Chinese character, ASCII punctuation, then (after at most a space) more Chinese, the
# " · " before the English, or the end of the text.
HALF_WIDTH = re.compile(rf"[{_CJK}][,?!:;](?= ?(?:[{_CJK}]| ·|$))", re.MULTILINE)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.extend(data.splitlines())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in ("title", "placeholder", "alt", "aria-label", "value"):
                self.parts.append(value)


def half_width(page: str) -> list[str]:
    parser = _Text()
    parser.feed(page)
    found: list[str] = []
    for part in parser.parts:
        for match in HALF_WIDTH.finditer(part):
            found.append(part[max(0, match.start() - 12) : match.end() + 12])
    return found


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("如果改变主意, 请重新打开页面", True),
        ("确定要退出登录吗?", True),
        ("无法扫码? · Cannot scan?", True),
        ("请点「取消」: 确认后", True),
        ("取消: 确认后", True),
        ("如果改变主意，请重新打开页面。", False),
        ("测试号: appID", False),  # an English sentence naming a Chinese term
        ("你好, stranger", False),
    ],
)
def test_the_rule(text: str, flagged: bool) -> None:
    assert bool(half_width(f"<p>{text}</p>")) == flagged


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_the_middlewares_pages(lang: str) -> None:
    bad = {name: half_width(make().body.decode()) for name, make in middleware_pages(lang).items()}
    assert {name: found for name, found in bad.items() if found} == {}


def test_the_demos_pages() -> None:
    bad = {name: half_width(page) for name, page in demo_page_texts().items()}
    assert {name: found for name, found in bad.items() if found} == {}


@pytest.mark.anyio
async def test_the_pages_the_demo_and_the_emulator_serve() -> None:
    pages = await served_page_texts()
    bad = {name: half_width(page) for name, page in pages.items()}
    assert {name: found for name, found in bad.items() if found} == {}


DOCS = Path(__file__).resolve().parent.parent / "docs"
CHINESE_DOCS = sorted([DOCS / "index.md", *(DOCS / "zh").glob("*.md")])


@pytest.mark.parametrize("page", CHINESE_DOCS, ids=lambda path: path.name)
def test_the_chinese_docs(page: Path) -> None:
    # Prose only: code blocks and `code` keep their own punctuation.
    text = re.sub(r"```.*?```", "", page.read_text("utf-8"), flags=re.DOTALL)
    text = re.sub(r"`[^`]*`", "", text)
    found = [m.group(0) for line in text.splitlines() for m in HALF_WIDTH.finditer(line)]
    assert found == []


def test_the_chinese_docs_are_all_read() -> None:
    assert len(CHINESE_DOCS) == 9
