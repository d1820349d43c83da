-- Conversations, version 1 (core/conversations_pg.py applies it once, in order, at start).
-- {schema} is the store's schema. Order keys are "<13-digit ms>:<id>" compared byte by byte
-- (COLLATE "C"), the same order the Redis backend pages in.
CREATE TABLE {schema}.chats (
    instance text NOT NULL,
    chat_id text NOT NULL,
    name text,
    is_group boolean NOT NULL,
    last_key text COLLATE "C" NOT NULL,
    unread integer NOT NULL DEFAULT 0,
    recent_key text COLLATE "C" GENERATED ALWAYS AS (left(last_key, 14) || chat_id) STORED,
    PRIMARY KEY (instance, chat_id)
);
CREATE INDEX chats_recent ON {schema}.chats (instance, recent_key);

CREATE TABLE {schema}.messages (
    instance text NOT NULL,
    chat_id text NOT NULL,
    message_id text NOT NULL,
    order_key text COLLATE "C" NOT NULL,
    at timestamptz NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (instance, chat_id, message_id)
);
CREATE INDEX messages_order ON {schema}.messages (instance, chat_id, order_key);
CREATE INDEX messages_age ON {schema}.messages (at);
