"""Optional OpenID Connect sign-in (authlib), enabled when the three oidc_* settings are set.

The provider proves an email address; Accord then looks that address up like a password
sign-in would, so the directory still decides who someone is and what they may see.
"""

from __future__ import annotations

import warnings
from functools import cache

from fastapi import Request

# authlib's httpx integration warns about itself on import (AuthlibDeprecationWarning, "use
# httpx2"): nothing of Accord's to change, and every web process would print it at start.
# authlib.deprecate sets its warnings to "always" when imported, so the filter comes after.
with warnings.catch_warnings():
    from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client.errors import OAuthError  # type: ignore[import-untyped]
    from authlib.integrations.starlette_client import (  # type: ignore[import-untyped]
        OAuth,
        StarletteOAuth2App,
    )

from accord.platform.settings import Settings


class OidcFailed(Exception):
    pass


@cache
def _registry(discovery_url: str, client_id: str, client_secret: str) -> OAuth:
    oauth = OAuth()
    oauth.register(
        name="oidc",
        server_metadata_url=discovery_url,
        client_id=client_id,
        client_secret=client_secret,
        client_kwargs={"scope": "openid email profile"},
    )
    return oauth


def oidc_client(settings: Settings) -> StarletteOAuth2App:
    if not (
        settings.oidc_discovery_url and settings.oidc_client_id and settings.oidc_client_secret
    ):
        raise OidcFailed("single sign-on is not configured")
    oauth = _registry(
        settings.oidc_discovery_url,
        settings.oidc_client_id,
        settings.oidc_client_secret.get_secret_value(),
    )
    client: StarletteOAuth2App = oauth.create_client("oidc")
    return client


async def oidc_login(settings: Settings, request: Request) -> str:
    """The verified email address of the person the provider signed in."""
    client = oidc_client(settings)
    try:
        token = await client.authorize_access_token(request)
    except OAuthError as exc:
        raise OidcFailed(f"single sign-on failed: {exc.description or exc.error}") from None
    claims = token.get("userinfo") or {}
    email = claims.get("email")
    if not email:
        raise OidcFailed("single sign-on did not say who you are (no email claim)")
    if claims.get("email_verified") is False:
        raise OidcFailed(f"the provider has not verified {email}")
    return str(email).lower()
