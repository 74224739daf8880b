"""Every Cypher query of Persona, in one module.

Values are always ``$parameters``. The only names ever formatted into a query are node labels from ``NodeType``,
relationship types from ``LinkType``, the fixed labels below and a sort direction chosen by a boolean: user text can
never become Cypher. ``_label`` and ``_rel`` re-check their argument against the enums before it is formatted.

Label scheme: every stored node is ``:Node:<Type>``; episodes, psyche and goals are also ``:Memory``; nodes with text
to search are ``:Searchable`` (the full-text index); nodes with an embedding are ``:Embedded`` (the vector index).
Users are ``:User``; the embedder the store was built with and its schema version live in ``:PersonaMeta`` nodes
(keys ``embedder`` and ``schema``).
"""

from __future__ import annotations

from persona.models import MEMORY_TYPES, SEARCHABLE_TYPES, LinkType, NodeType

VECTOR_INDEX = "persona_embedding"
TEXT_INDEX = "persona_search_text"
TEXT_ANALYZER = "english"
"""Lucene's English analyzer stems (walked ~ walk), close to the SQLite store's porter tokenizer."""


def _label(node_type: NodeType) -> str:
    return NodeType(node_type).value


def _rel(link_type: LinkType) -> str:
    return LinkType(link_type).value


def _labels(node_type: NodeType, *, embedded: bool) -> list[str]:
    labels = ["Node", _label(node_type)]
    if node_type in MEMORY_TYPES:
        labels.append("Memory")
    if node_type in SEARCHABLE_TYPES:
        labels.append("Searchable")
    if embedded:
        labels.append("Embedded")
    return labels


def node_labels(node_type: NodeType, *, embedded: bool) -> str:
    """The labels of a stored node of this type, e.g. ``:Node:Episode:Memory:Searchable:Embedded``."""
    return ":" + ":".join(_labels(node_type, embedded=embedded))


# -- schema ----------------------------------------------------------------------------------------------------------
def schema_statements() -> list[str]:
    """Constraints and indexes (all idempotent) except the vector index, which waits for the embedder check."""
    statements = [
        "CREATE CONSTRAINT persona_meta_key IF NOT EXISTS FOR (m:PersonaMeta) REQUIRE m.key IS UNIQUE",
        "CREATE CONSTRAINT persona_user_id IF NOT EXISTS FOR (u:User) REQUIRE u.id IS UNIQUE",
        "CREATE CONSTRAINT persona_node_id IF NOT EXISTS FOR (n:Node) REQUIRE n.id IS UNIQUE",
        # Property uniqueness constraints (single and composite) are Community features; node keys are not.
        "CREATE CONSTRAINT persona_entity_key IF NOT EXISTS FOR (n:Entity) REQUIRE (n.user_id, n.canonical) IS UNIQUE",
        "CREATE CONSTRAINT persona_entry_hash IF NOT EXISTS FOR (n:Entry) "
        "REQUIRE (n.user_id, n.content_hash) IS UNIQUE",
        "CREATE INDEX persona_node_user IF NOT EXISTS FOR (n:Node) ON (n.user_id)",
        "CREATE INDEX persona_node_entry IF NOT EXISTS FOR (n:Node) ON (n.entry_id)",
        "CREATE INDEX persona_embedded_user IF NOT EXISTS FOR (n:Embedded) ON (n.user_id)",
        "CREATE INDEX persona_episode_chain IF NOT EXISTS FOR (n:Episode) ON (n.user_id, n.chain_key)",
        f"CREATE FULLTEXT INDEX {TEXT_INDEX} IF NOT EXISTS FOR (n:Searchable) ON EACH [n.search_text] "
        f"OPTIONS {{indexConfig: {{`fulltext.analyzer`: '{TEXT_ANALYZER}'}}}}",
    ]
    for node_type in NodeType:
        label = _label(node_type)
        statements.append(
            f"CREATE INDEX persona_{label.lower()}_time IF NOT EXISTS FOR (n:{label}) ON (n.user_id, n.sort_time)"
        )
    return statements


EVOLVING_TEXT_INDEX = "persona_evolving_text"
CREATE_EVOLVING_TEXT_INDEX = (
    f"CREATE FULLTEXT INDEX {EVOLVING_TEXT_INDEX} IF NOT EXISTS FOR (n:Goal|Psyche) ON EACH [n.search_text] "
    f"OPTIONS {{indexConfig: {{`fulltext.analyzer`: '{TEXT_ANALYZER}'}}}}"
)
"""The words of goals and psyche memories alone: an entry's evolution candidates are found among them, and in the
index of every searchable node they are a small share of the hits (passages and episodes crowd them out)."""
CREATE_VECTOR_INDEX = (
    f"CREATE VECTOR INDEX {VECTOR_INDEX} IF NOT EXISTS FOR (n:Embedded) ON n.embedding "
    "OPTIONS {indexConfig: {`vector.dimensions`: $dimension, `vector.similarity_function`: 'cosine', "
    # Quantisation (on by default since 5.23) skews scores by up to ~0.1; exact floats keep them comparable to SQLite.
    "`vector.quantization.enabled`: false}}"
)
VECTOR_INDEX_OPTIONS = "SHOW VECTOR INDEXES YIELD name, options WHERE name = $name RETURN options"
AWAIT_INDEXES = "CALL db.awaitIndexes($seconds)"
# The schema history is JSON text (a list of {name, version, applied_at}), not a list property: every property of
# the meta node stays a plain value that tools can print.
# (A pre-release build kept the names as a list in ``m.migrations``: read once, then replaced by the history.)
GET_SCHEMA_STATE = """
MATCH (m:PersonaMeta {key: 'schema'})
RETURN m.history AS history, m.version AS version, m.migrations AS legacy_names
"""
RECORD_MIGRATION = """
MERGE (m:PersonaMeta {key: 'schema'})
SET m.history = $history, m.version = $version
REMOVE m.migrations, m.applied_at
"""
SET_EMBEDDER = "MATCH (m:PersonaMeta {key: 'embedder'}) SET m.name = $name, m.dimension = $dimension"
DROP_VECTOR_INDEX = f"DROP INDEX {VECTOR_INDEX} IF EXISTS"
MERGE_EMBEDDER = """
MERGE (m:PersonaMeta {key: 'embedder'})
ON CREATE SET m.name = $name, m.dimension = $dimension
RETURN m.name AS name, m.dimension AS dimension
"""

# -- users -----------------------------------------------------------------------------------------------------------
# Ensuring the user also takes its write lock (as LOCK_USER does): the store's writes ensure and then lock, and one
# statement does both.
MERGE_USER = """
MERGE (u:User {id: $id})
ON CREATE SET u.display_name = $display_name, u.created_at = $created_at, u.body = $body
SET u.lock_seq = coalesce(u.lock_seq, 0) + 1
RETURN u.body AS body
"""
# Every write transaction of a user starts here: the write lock on the user node serialises that user's writers,
# so two ingests can never place episodes in the chain from the same stale view.
LOCK_USER = "MATCH (u:User {id: $user_id}) SET u.lock_seq = coalesce(u.lock_seq, 0) + 1 RETURN u.id AS id"
LIST_USERS = "MATCH (u:User) RETURN u.body AS body ORDER BY u.id"
USER_EXISTS = "MATCH (u:User {id: $user_id}) RETURN count(u) AS n"
COUNT_USERS = "MATCH (u:User) RETURN count(u) AS n"
DELETE_USER_NODES = """
MATCH (n:Node {user_id: $user_id})
WITH n LIMIT $batch
DETACH DELETE n
RETURN count(*) AS n
"""
DELETE_USER = "MATCH (u:User {id: $user_id}) DETACH DELETE u"


# -- nodes -----------------------------------------------------------------------------------------------------------
# Lookups by id carry ``USING INDEX n:Node(id)``: a plan made while the database was small (or held one user) may
# otherwise seek the user_id index and filter every node of the user. The user check still applies.
_NODE_BY_ID = "MATCH (n:Node {id: $id, user_id: $user_id}) USING INDEX n:Node(id)"


def _when(condition: str, action: str) -> str:
    """Cypher's conditional write: ``action`` runs only for rows where ``condition`` holds."""
    return f"FOREACH (_ IN CASE WHEN {condition} THEN [1] ELSE [] END | {action})"


def _create_nodes() -> str:
    # Labels cannot be parameters, so each type's labels are spelled out once, chosen per row: one round trip
    # creates every node of a batch whatever its type.
    switch = [
        _when(f"row.type = '{_label(t)}'", "SET n" + node_labels(t, embedded=False).removeprefix(":Node"))
        for t in NodeType
    ]
    switch.append(_when("row.embedding IS NOT NULL", "SET n:Embedded"))
    return "UNWIND $rows AS row\nCREATE (n:Node)\nSET n = row\n" + "\n".join(switch)


CREATE_NODES = _create_nodes()
"""Create one node per row of ``$rows`` (each row is the node's property map, with ``type`` and ``embedding``)."""


def merge_entities(*, embedded: bool) -> str:
    """Create the entities of ``$rows`` unless the user already has their canonical name; return the stored ids."""
    extra = "".join(f":{label}" for label in _labels(NodeType.ENTITY, embedded=embedded) if label != "Entity")
    return f"""
UNWIND $rows AS row
MERGE (n:Entity {{user_id: row.user_id, canonical: row.canonical}})
ON CREATE SET n{extra}, n = row
RETURN row.id AS given, n.id AS stored
"""


FIND_ENTITIES = """
UNWIND $canonicals AS canonical
MATCH (n:Entity {user_id: $user_id, canonical: canonical})
RETURN n.id AS id, n.body AS body
"""


def rewrite_nodes(*, reindex: bool) -> str:
    """New versions of stored nodes (``$rows`` of properties); ``reindex`` also sets the full-text ``search_text``
    (left alone when the text did not change, e.g. a status, so Lucene does no work)."""
    search = ", n.search_text = row.search_text" if reindex else ""
    return f"""
UNWIND $rows AS row
MATCH (n:Node {{id: row.id, user_id: $user_id}}) USING INDEX n:Node(id)
SET n.body = row.body, n.sort_time = row.sort_time, n.chain_key = row.chain_key, n.status = row.status,
    n.canonical = row.canonical, n.content_hash = row.content_hash{search}
"""


SET_EMBEDDING = f"{_NODE_BY_ID} SET n:Embedded, n.embedding = $embedding"
REMOVE_EMBEDDING = f"{_NODE_BY_ID} REMOVE n:Embedded, n.embedding"
GET_NODES = """
UNWIND $ids AS id
MATCH (n:Node {id: id, user_id: $user_id}) USING INDEX n:Node(id)
RETURN n.type AS type, n.body AS body
"""
OWNED_IDS = """
UNWIND $ids AS id
MATCH (n:Node {id: id, user_id: $user_id}) USING INDEX n:Node(id)
RETURN n.id AS id
"""
IDS_IN_USE = """
UNWIND $ids AS id
MATCH (n:Node {id: id}) USING INDEX n:Node(id)
RETURN n.id AS id
"""
DELETE_NODES = """
UNWIND $ids AS id
MATCH (n:Node {id: id, user_id: $user_id}) USING INDEX n:Node(id)
DETACH DELETE n
"""
ENTRY_DEPENDANTS = "MATCH (n:Node {user_id: $user_id, entry_id: $id}) RETURN n.id AS id, n.type AS type"
FIND_ENTRY_BY_HASH = "MATCH (n:Entry {user_id: $user_id, content_hash: $content_hash}) RETURN n.body AS body"
FIND_ENTRIES_BY_HASH = """
UNWIND $hashes AS hash
MATCH (n:Entry {user_id: $user_id, content_hash: hash})
RETURN hash, n.body AS body
"""


def list_nodes(node_type: NodeType, *, newest_first: bool) -> str:
    """One type's nodes, filtered by ``sort_time`` in [$start, $end) and ``$status`` (nulls mean no filter)."""
    order = "DESC" if newest_first else "ASC"
    return f"""
MATCH (n:{_label(node_type)} {{user_id: $user_id}})
WHERE ($start IS NULL OR n.sort_time >= $start) AND ($end IS NULL OR n.sort_time < $end)
  AND ($status IS NULL OR n.status = $status)
RETURN n.type AS type, n.body AS body
ORDER BY n.sort_time {order}, n.created_at {order}, n.id {order}
SKIP $offset LIMIT $limit
"""


def count_nodes(node_type: NodeType) -> str:
    """How many nodes of one type the user has."""
    return f"MATCH (n:{_label(node_type)} {{user_id: $user_id}}) RETURN count(n) AS n"


# -- links -----------------------------------------------------------------------------------------------------------
def _merge_links() -> str:
    switch = [_when(f"link.type = '{_rel(t)}'", f"MERGE (a)-[:{_rel(t)}]->(b)") for t in LinkType]
    return (
        "UNWIND $links AS link\n"
        "MATCH (a:Node {id: link.source, user_id: $user_id}) USING INDEX a:Node(id)\n"
        "MATCH (b:Node {id: link.target, user_id: $user_id}) USING INDEX b:Node(id)\n"
        + "\n".join(switch)
        + "\nRETURN count(*) AS n"
    )


MERGE_LINKS = _merge_links()
"""Create each link of ``$links`` (maps of type, source, target) unless it is already there. Returns how many had
both ends among the user's nodes: fewer than given means a foreign or unknown id."""


DELETE_LINKS = """
UNWIND $links AS link
MATCH (a:Node {id: link.source, user_id: $user_id})-[r]->(b:Node {id: link.target, user_id: $user_id})
WHERE type(r) = link.type
DELETE r
"""
"""Remove each link of ``$links`` (maps of type, source, target) between the user's nodes (an undo of a change)."""

# -- migrations of data (issue 12) -----------------------------------------------------------------------------------
EVOLVING_BODIES = """
MATCH (n:Node) WHERE (n:Psyche OR n:Goal) AND n.id > $after
RETURN n.id AS id, n.body AS body ORDER BY n.id LIMIT $limit
"""
ENTITY_BODIES = """
MATCH (n:Node) WHERE n:Entity AND n.id > $after
RETURN n.id AS id, n.body AS body ORDER BY n.id LIMIT $limit
"""
SET_BODIES = "UNWIND $rows AS row MATCH (n:Node {id: row.id}) SET n.body = row.body"
SET_PSYCHE_STATUS = "UNWIND $ids AS id MATCH (n:Psyche {id: id}) SET n.status = $status"

NEIGHBOURS = """
UNWIND $ids AS id
MATCH (n:Node {id: id, user_id: $user_id})-[r]-(:Node {user_id: $user_id}) USING INDEX n:Node(id)
WHERE type(r) IN $types
RETURN DISTINCT type(r) AS type, startNode(r).id AS source, endNode(r).id AS target
"""

# Each link once (outgoing from its source), and only when its target is among the ids too.
LINKS_AMONG = """
UNWIND $ids AS id
MATCH (n:Node {id: id, user_id: $user_id})-[r]->(m:Node {user_id: $user_id}) USING INDEX n:Node(id)
WHERE m.id IN $ids AND type(r) IN $types
RETURN type(r) AS type, n.id AS source, m.id AS target
"""

# -- the NEXT chain --------------------------------------------------------------------------------------------------
# Episodes carry ``chain_key``: fixed-width UTC occurred_at, created_at and the id in one string, so its text order
# is the chain's (occurred_at, created_at, id) order and each neighbour is one seek on a (user_id, chain_key) index.
# A whole batch of episodes, all stored first, placed in one statement (one row per episode, in chain order). Each
# subquery run sees the writes of the runs before it. Because every sibling is already stored, an episode's
# neighbours p and q are its neighbours in the final chain: any other NEXT out of p or into q is stale and goes, and
# p->e->q are merged. No correct link is ever removed, so the chain ends as one-at-a-time placement leaves it.
PLACE_EPISODES = """
UNWIND $ids AS id
CALL (id) {
  MATCH (e:Node:Episode {id: id, user_id: $user_id}) USING INDEX e:Node(id)
  CALL (e) {
    OPTIONAL MATCH (p:Episode {user_id: $user_id}) USING INDEX p:Episode(user_id, chain_key)
    WHERE p.chain_key < e.chain_key
    RETURN p ORDER BY p.chain_key DESC LIMIT 1
  }
  CALL (e) {
    OPTIONAL MATCH (q:Episode {user_id: $user_id}) USING INDEX q:Episode(user_id, chain_key)
    WHERE q.chain_key > e.chain_key
    RETURN q ORDER BY q.chain_key LIMIT 1
  }
  CALL (p, e) {
    OPTIONAL MATCH (p)-[stale:NEXT]->(other)
    WHERE other <> e
    DELETE stale
  }
  CALL (q, e) {
    OPTIONAL MATCH (other)-[stale:NEXT]->(q)
    WHERE other <> e
    DELETE stale
  }
  FOREACH (_ IN CASE WHEN p IS NULL THEN [] ELSE [1] END | MERGE (p)-[:NEXT]->(e))
  FOREACH (_ IN CASE WHEN q IS NULL THEN [] ELSE [1] END | MERGE (e)-[:NEXT]->(q))
}
"""
UNLINK_FROM_CHAIN = """
MATCH (e:Node:Episode {id: $id, user_id: $user_id}) USING INDEX e:Node(id)
OPTIONAL MATCH (p:Episode)-[before:NEXT]->(e)
OPTIONAL MATCH (e)-[after:NEXT]->(q:Episode)
DELETE before, after
FOREACH (_ IN CASE WHEN p IS NULL OR q IS NULL THEN [] ELSE [1] END | MERGE (p)-[:NEXT]->(q))
"""
CHAIN_LINKS = "MATCH (a:Episode {user_id: $user_id})-[:NEXT]->(b:Episode) RETURN a.id AS source, b.id AS target"
FIRST_EPISODE = "MATCH (n:Episode {user_id: $user_id}) RETURN n.id AS id ORDER BY n.chain_key LIMIT 1"

# -- search ----------------------------------------------------------------------------------------------------------
# Equal scores are ordered by when the node happened, then when it was stored (as SQLite orders them), so both stores
# return the same results in the same order.
# The vector index and vector.similarity.cosine both report cosine as (1 + cos) / 2; the store reports raw cosine.
VECTOR_QUERY = f"""
CALL db.index.vector.queryNodes('{VECTOR_INDEX}', $candidates, $embedding) YIELD node, score
WHERE node.user_id = $user_id AND node.type IN $types
RETURN node.id AS id, node.type AS type, 2 * score - 1 AS score
ORDER BY score DESC, node.sort_time, node.created_at, id
LIMIT $k
"""
# The whole store's vector count comes from the count store; the user's from the (Embedded, user_id) index.
VECTOR_SHARE = """
CALL () { MATCH (n:Embedded) RETURN count(n) AS total }
CALL () { MATCH (n:Embedded {user_id: $user_id}) RETURN count(n) AS mine }
RETURN total, mine
"""
VECTOR_SCAN = """
MATCH (n:Embedded {user_id: $user_id})
WHERE n.type IN $types
WITH n, vector.similarity.cosine(n.embedding, $embedding) AS similarity
RETURN n.id AS id, n.type AS type, 2 * similarity - 1 AS score
ORDER BY score DESC, n.sort_time, n.created_at, id
LIMIT $k
"""
_TEXT_QUERY = """
CALL db.index.fulltext.queryNodes('{index}', $query{options}) YIELD node, score
WHERE node.user_id = $user_id AND node.type IN $types
RETURN node.id AS id, node.type AS type, score
ORDER BY score DESC, node.sort_time, node.created_at, id
LIMIT $k
"""
# Like the vector index, the full-text index is global: the best $candidates hits usually hold the user's top k; when
# they do not, the whole match list is filtered (Lucene results carry no user filter).
TEXT_QUERY_TOP = _TEXT_QUERY.format(index=TEXT_INDEX, options=", {limit: $candidates}")
TEXT_QUERY_ALL = _TEXT_QUERY.format(index=TEXT_INDEX, options="")

# -- stats -----------------------------------------------------------------------------------------------------------
COUNT_BY_TYPE = "MATCH (n:Node) RETURN n.type AS type, count(*) AS n"
COUNT_LINKS = "MATCH (:Node)-[r]->(:Node) RETURN count(r) AS n"
USER_COUNT_BY_TYPE = "MATCH (n:Node {user_id: $user_id}) RETURN n.type AS type, count(*) AS n"
USER_COUNT_LINKS = "MATCH (:Node {user_id: $user_id})-[r]->(:Node) RETURN count(r) AS n"

# -- evolution candidates ----------------------------------------------------------------------------------------
# One round trip for an import chunk: for each probe (an entry), the best full-text matches of its words and the
# nearest goals / psyche memories to each of its vectors, among those that happened by its date and are not its
# own; then their bodies. Words are looked up in a full-text index of goals and psyche memories only (every user's):
# it is asked for enough hits that ~4 x $k_text are likely the user's (the user's share of all goals and psyche).
# (``sort_time IS NOT NULL``, always true, lets a match seek the
# (user_id, sort_time) index instead of scanning every user's goals.)
_EVOLVING_COUNTS = """
CALL () { MATCH (n:Goal) RETURN count(n) AS all_goals }
CALL () { MATCH (n:Psyche) RETURN count(n) AS all_psyche }
CALL () { MATCH (g:Goal {user_id: $user_id}) WHERE g.sort_time IS NOT NULL RETURN count(g) AS goals }
CALL () { MATCH (s:Psyche {user_id: $user_id}) WHERE s.sort_time IS NOT NULL RETURN count(s) AS psyche }
"""
# The full-text ask, from the counts as they are now (a new user's first entries must not ask for thousands).


def _text_ask(carry: str = "") -> str:
    """The counts and the full-text ask, keeping the variables named in ``carry`` (e.g. ``"nearest, "``)."""
    return f"""
{_EVOLVING_COUNTS}
WITH {carry}4 * $k_text * (all_goals + all_psyche) / (goals + psyche + 1) AS wanted
WITH {carry}CASE WHEN wanted < $text_floor THEN $text_floor WHEN wanted > $text_ceiling THEN $text_ceiling
          ELSE wanted END AS text_ask
"""


_EVOLVING_TEXT = f"""
CALL (p, text_ask) {{
  WITH p, text_ask WHERE p.query IS NOT NULL
  CALL db.index.fulltext.queryNodes('{EVOLVING_TEXT_INDEX}', p.query, {{limit: text_ask}}) YIELD node, score
  WHERE node.user_id = $user_id AND node.type IN $types AND node.sort_time <= p.before
    AND node.entry_id <> p.entry_id AND coalesce(node.status, 'active') = 'active'
  WITH node, score ORDER BY score DESC, node.sort_time, node.created_at, node.id LIMIT $k_text
  RETURN collect(node.id) AS text_ids
}}
"""
# One row: each probe's ids, and every node found once (the probes of a chunk find mostly the same memories, and a
# body per probe cost its transfer and its parsing each time).
_EVOLVING_NODES = """
WITH collect({i: i, ids: ids}) AS found
CALL (found) {
  UNWIND found AS f
  UNWIND f.ids AS id
  WITH DISTINCT id
  MATCH (n:Node {id: id, user_id: $user_id}) USING INDEX n:Node(id)
  RETURN collect({id: n.id, type: n.type, body: n.body}) AS nodes
}
RETURN found, nodes
"""
_USER_EVOLVING = """
CALL () {
  MATCH (n:Goal {user_id: $user_id}) WHERE n.status = 'active' AND n.sort_time IS NOT NULL RETURN n
  UNION
  MATCH (n:Psyche {user_id: $user_id}) WHERE n.status IS NULL AND n.sort_time IS NOT NULL RETURN n
}
"""
# A user with a few thousand goals and psyche memories: the store scores the vectors itself (numpy), over the user's
# goals and psyche as listed here; their vectors (which never change but by a re-embed or a text edit) come once per
# process: only for ids not in $known (a map id -> true). One row of parallel lists, in date order, times as integer
# microseconds since the epoch: a row and a DateTime per memory cost the client more than the query (~1,000 of them
# per import chunk). Past $scan_limit memories only their number comes back (the store then asks the vector index).
EVOLVING_VECTORS = f"""
{_USER_EVOLVING}
WITH n WHERE n.embedding IS NOT NULL
WITH n ORDER BY n.sort_time, n.created_at, n.id
WITH collect(n) AS listed
WITH listed, size(listed) <= $scan_limit AS scanned
RETURN size(listed) AS total,
       [n IN listed WHERE scanned | n.id] AS ids,
       [n IN listed WHERE scanned | coalesce(n.entry_id, '')] AS entry_ids,
       [n IN listed WHERE scanned | n.sort_time.epochSeconds * 1000000 + n.sort_time.microsecond] AS micros,
       [n IN listed WHERE scanned AND $known[n.id] IS NULL | {{id: n.id, embedding: n.embedding}}] AS fresh
"""
# Then the full-text hits of each probe and the nodes: the ids found by meaning come in $nearest (one list per probe).
EVOLUTION_CANDIDATES_SCAN = f"""
{_text_ask()}
UNWIND range(0, size($probes) - 1) AS i
WITH i, $probes[i] AS p, text_ask
{_EVOLVING_TEXT}
WITH i, text_ids + $nearest[i] AS ids
{_EVOLVING_NODES}
"""
# A bigger user: the global vector index per vector, asked for $vector_candidates; a vector for which fewer than
# $k_vector survive the filters is answered by a scan of the user's goals and psyche.
EVOLUTION_CANDIDATES_INDEXED = f"""
{_text_ask()}
UNWIND range(0, size($probes) - 1) AS i
WITH i, $probes[i] AS p, text_ask
{_EVOLVING_TEXT}
CALL (p) {{
  UNWIND p.vectors AS v
  CALL (p, v) {{
    CALL db.index.vector.queryNodes('{VECTOR_INDEX}', $vector_candidates, v) YIELD node, score
    WHERE node.user_id = $user_id AND node.type IN $types AND node.sort_time <= p.before
      AND node.entry_id <> p.entry_id AND coalesce(node.status, 'active') = 'active'
    WITH node, score ORDER BY score DESC, node.sort_time, node.created_at, node.id LIMIT $k_vector
    RETURN collect(node.id) AS indexed
  }}
  CALL (p, v, indexed) {{
    WITH p, v WHERE size(indexed) < $k_vector
    {_USER_EVOLVING}
    WITH n, v, p WHERE n.embedding IS NOT NULL AND n.sort_time <= p.before AND n.entry_id <> p.entry_id
    WITH n, vector.similarity.cosine(n.embedding, v) AS score
    ORDER BY score DESC, n.sort_time, n.created_at, n.id LIMIT $k_vector
    RETURN collect(n.id) AS scanned
  }}
  RETURN collect(CASE WHEN size(indexed) < $k_vector THEN scanned ELSE indexed END) AS per_vector
}}
WITH i, text_ids + reduce(acc = [], ids IN per_vector | acc + ids) AS ids
{_EVOLVING_NODES}
"""
