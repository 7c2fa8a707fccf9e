"""``mlyard studio``: open the web studio in a browser, already signed in.

The server issues a one-time code (good for a minute, for one sign-in) to the CLI's token; the browser
opens ``/studio/signin#code=...``. The code rides in the URL's fragment, which browsers never send to
a server, and the page posts it in a form: neither the token nor the code lands in a log.
"""

from __future__ import annotations

from urllib.parse import quote

import click

from mlyard.cli.context import make_client


@click.command("studio")
@click.argument("page", required=False, default="")
@click.option("--no-browser", is_flag=True,
              help="Print the sign-in link instead of opening a browser (it works once, within a minute).")
@click.pass_context
def studio(ctx: click.Context, page: str, no_browser: bool) -> None:
    """Open the studio (the web UI) signed in; PAGE is a studio path such as /studio/jobs (default: experiments)."""
    import webbrowser

    with make_client(ctx) as client:
        issued = client.transport.json("POST", "/api/v1/studio/codes")
        base = client.url.rstrip("/")
    target = page if page.startswith("/studio/") else "/studio/" + page.lstrip("/") if page else ""
    link = f"{base}/studio/signin" + (f"?next={quote(target, safe='')}" if target else "") + f"#code={issued['code']}"
    if no_browser or not webbrowser.open(link):
        click.echo(link)
        click.echo("(this link signs in once, within a minute)", err=True)
    else:
        click.echo(f"opened the studio at {base}/studio/")
