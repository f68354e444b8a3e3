"""A round's guidelines: markdown rendered, then sanitised by an allow-list (app/markup.py)."""

from django.template import Context, Template

from app.markup import render_markdown


def test_markdown_becomes_html():
    text = "# Rules\n\nAccept when **every** fact is in the *web text*.\n\n- one\n- two\n\n`code` and <kbd>A</kbd>"
    assert render_markdown(text) == (
        "<h1>Rules</h1>\n<p>Accept when <strong>every</strong> fact is in the <em>web text</em>.</p>\n"
        "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n<p><code>code</code> and <kbd>A</kbd></p>\n"
    )
    assert render_markdown("| a | b |\n|---|---|\n| 1 | ~~2~~ |") == (
        "<table>\n<thead>\n<tr>\n<th>a</th>\n<th>b</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td>1</td>\n"
        "<td><s>2</s></td>\n</tr>\n</tbody>\n</table>\n"
    )
    assert render_markdown("   \n") == ""


def test_scripts_handlers_and_javascript_links_are_removed():
    script = "Before\n\n<script>window.__pwned = 1</script>\n\nAfter"
    assert render_markdown(script) == "<p>Before</p>\n\n<p>After</p>\n"
    assert render_markdown("<style>body { display: none }</style>ok") == "ok"
    assert render_markdown('<img src="x" onerror="alert(1)">') == ""
    assert render_markdown('<p onclick="alert(2)">p</p>') == "<p>p</p>"
    assert render_markdown("[bad](javascript:alert(1))") == "<p>[bad](javascript:alert(1))</p>\n"
    assert render_markdown('<a href="javascript:alert(1)" onclick="x()">a</a>') == (
        '<p><a rel="noopener noreferrer nofollow">a</a></p>\n'
    )
    assert render_markdown('<iframe src="https://evil.example"></iframe><object data="x"></object>') == ""
    assert render_markdown("[ok](https://example.org/guide) <mailto:team@example.org>") == (
        '<p><a href="https://example.org/guide" rel="noopener noreferrer nofollow">ok</a> '
        '<a href="mailto:team@example.org" rel="noopener noreferrer nofollow">mailto:team@example.org</a></p>\n'
    )


def test_the_template_filter_marks_only_sanitised_html_safe():
    html = Template("{% load markup %}{{ text|markdown }}").render(Context({"text": "**hi** <script>x()</script>"}))
    assert html == "<p><strong>hi</strong> </p>\n"
    assert Template("{% load markup %}{{ text|markdown }}").render(Context({"text": None})) == ""
