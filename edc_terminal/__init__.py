"""The EDC terminal at an e-Warong: a UI-free core (`core`), its persisted state (`store`),
receipts (`receipt`), an asyncio ISO 8583 client (`client`), and a headless driver (`headless`)
used by the `sembako edc-cli` commands. A Textual UI reuses the same core and client."""
