"""`circlebot matrix setup`: give the bot its cross-signing keys (once) and sign its device with them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from circlebot.adapters.matrix import crosssign
from circlebot.adapters.matrix.adapter import MatrixAdapter


async def setup_cross_signing(adapter: MatrixAdapter, password: Callable[[], Awaitable[str | None]],
                              say: Callable[[str], None]) -> crosssign.CrossSigningKeys:
    """Log in as the bot (its one device, its crypto store), upload its cross-signing keys unless the
    homeserver has them already, and sign its device. `password` is asked only when the homeserver wants
    it (replacing keys someone uploaded before). A new recovery key is shown once through `say`."""
    store = adapter._crypto_dir
    if store is None:
        raise crosssign.CrossSigningError("encryption is off ([matrix] encryption = false): there is no crypto "
                                          "store to keep cross-signing keys in")
    try:
        await adapter._login()
        await adapter._key_chores()  # a device new to the homeserver uploads its keys first
        hs = crosssign.Homeserver(adapter.settings.homeserver, adapter.user_id, adapter.client.access_token)
        on_server = hs.master_on_server(await hs.query())
        keys = await asyncio.to_thread(crosssign.load_keys, store, adapter.user_id)
        fresh = False
        if keys is None and adapter._recovery_key:
            keys = crosssign.CrossSigningKeys.from_recovery_key(adapter._recovery_key)
            say("Using the recovery key from the environment.")
        if keys is not None and on_server == keys.public("master"):
            say(f"The cross-signing keys of {adapter.user_id} are on the homeserver already.")
        else:
            if keys is None:
                keys, fresh = crosssign.CrossSigningKeys.generate(), True
            if on_server is not None:
                say(f"{adapter.user_id} has other cross-signing keys on the homeserver: replacing them (members "
                    "will see that the bot's identity changed).")
            await hs.upload_keys(keys, password)
            say(f"Uploaded the cross-signing keys of {adapter.user_id} (master key {keys.public('master')}).")
        await asyncio.to_thread(crosssign.save_keys, store, adapter.user_id, keys)
        device = str(adapter.client.device_id)
        if await hs.sign_device(keys, device):
            say(f"Signed device {device} with the self-signing key.")
        else:
            say(f"Device {device} is signed already.")
        if fresh:
            say(f"Recovery key (shown once; keep it safe, it restores these keys on a new host):\n"
                f"    {keys.recovery_key}")
        return keys
    finally:
        await adapter.client.close()
