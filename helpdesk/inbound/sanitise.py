"""HTML of inbound mail made safe to show inside the operator inbox, with nh3 (ammonia).

An allow-list, not a deny-list: no scripts, no event handlers, no `style` (CSS `url()` and
`@import` load remote resources and can exfiltrate), no forms, frames or `<base>`, and no
remote images — a remote image tells the sender when and from where the mail was read. Inline
`cid:` images (RFC 2392) are kept so that ingest can point them at stored attachments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from urllib.parse import unquote

import nh3

_TAGS = frozenset(
    "a abbr b bdi blockquote br caption center cite code col colgroup dd del dfn div "  # noqa: SIM905
    "dl dt em font h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small "
    "span strike strong sub sup table tbody td tfoot th thead tr tt u ul var".split()
)
_DROPPED_WITH_CONTENT = frozenset(["script", "style", "title", "template", "noscript", "xml"])
_CELL = {"colspan", "rowspan", "align", "valign", "width"}
_ATTRIBUTES = {
    "*": {"dir", "lang", "title", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": _CELL,
    "th": _CELL,
    "table": {"border", "cellpadding", "cellspacing", "width"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "ol": {"start", "type"},
    "font": {"color", "face", "size"},
}
_LINK_SCHEMES = ("http:", "https:", "mailto:", "tel:")
# Inline images only: raster types (SVG can carry script), and no remote fetch.
_INLINE_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,", re.IGNORECASE)
LINK_REL = "noopener noreferrer nofollow"


def sanitise_html(html: str) -> str:
    """Sanitised HTML: allowed tags and attributes only, links marked, remote images removed."""
    return _default_cleaner().clean(html)


def rewrite_cid_urls(html: str, mapping: Mapping[str, str]) -> str:
    """Point `cid:` images at the given URLs (keys are Content-IDs without angle brackets).

    Runs the sanitiser again with the mapping, so an URL is only ever placed into a `src`
    attribute that the HTML parser recognised. Apply it once, to `sanitise_html` output;
    unmapped `cid:` references stay as they are.
    """
    return _build_cleaner(dict(mapping)).clean(html)


@cache
def _default_cleaner() -> nh3.Cleaner:
    return _build_cleaner({})


def _build_cleaner(urls: Mapping[str, str]) -> nh3.Cleaner:
    def filter_attribute(tag: str, attribute: str, value: str) -> str | None:
        if attribute == "href":
            return value if value.strip().lower().startswith(_LINK_SCHEMES) else None
        if tag == "img" and attribute == "src":
            return _image_source(value.strip(), urls)
        return value

    return nh3.Cleaner(
        tags=set(_TAGS),
        clean_content_tags=set(_DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in _ATTRIBUTES.items()},
        attribute_filter=filter_attribute,
        url_schemes={"http", "https", "mailto", "tel", "cid", "data"},
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


def _image_source(value: str, urls: Mapping[str, str]) -> str | None:
    if value[:4].lower() == "cid:":
        content_id = unquote(value[4:]).strip("<> ")  # RFC 2392 cid URLs are %-encoded
        return urls.get(content_id, "cid:" + content_id)
    if _INLINE_IMAGE.match(value):
        return value
    return None  # remote (http, https, //host, relative): never fetched by default
