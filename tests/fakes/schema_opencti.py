"""The part of the OpenCTI GraphQL schema a connector touches, per platform line.

Source: OpenCTI-Platform/opencti, opencti-platform/opencti-graphql/config/schema/
opencti.graphql @ 340d3b07 (6.8/6.9 era: it has ConnectorInfoInput, dead_letter_routing,
auto_update, enrichment_resolution; `workAdd(connectorId: String!, friendlyName: String)`
has no further arguments and `reportExpectation(error: WorkErrorInput)` is the whole
signature in that copy). The definitions below are copied field for field from that file
(order kept, descriptions dropped) for every type a connector can reach from the root
fields listed; types marked PARTIAL are reachable but only sketched, because no connector
selects them (their field lists are incomplete, so "Cannot query field" suggestions on them
can differ from the real server).

Profiles (select with `schema_for(profile)`):
  "6.8"  the copy above.
  "6.5"  RegisterConnectorInput without auto_update and enrichment_resolution (pycti only
         sends them from 6.8.9; PROTOCOL.md 2.8). The matching Connector output fields are
         removed too (assumption: they arrived together).
  "6.0"  additionally: no `connectorInfo` argument on pingConnector, no ConnectorInfoInput
         or ConnectorInfo type, no Connector.connector_info (ping connectorInfo came with
         pycti 6.2.12), no RegisterConnectorInput.listen_callback_uri (6.5.7) and, by the
         same assumption, no ConnectorConfig.listen_callback_uri.

Only the schema differs between profiles: the request pipeline and the error formats
(graphql_server.py) are those of the 6.x platform on Apollo Server 4 for all three; that
6.0 already formatted errors exactly the same way is assumed, not checked.
"""

import functools

from . import gql

SDL_68 = r"""
directive @auth(for: [Capabilities] = [], and: Boolean = false) on OBJECT | FIELD_DEFINITION
directive @public on OBJECT | FIELD_DEFINITION
directive @allowUnlicensedLTS on OBJECT | FIELD_DEFINITION
directive @constraint(
  minLength: Int
  maxLength: Int
  startsWith: String
  endsWith: String
  notContains: String
  pattern: String
  format: String
  min: Int
  max: Int
  exclusiveMin: Int
  exclusiveMax: Int
  multipleOf: Int
) on INPUT_FIELD_DEFINITION

scalar DateTime

enum State {
  wait
  progress
  complete
  timeout
}

enum Capabilities {
  BYPASS
  CONNECTORAPI
  KNOWLEDGE
  KNOWLEDGE_KNUPDATE
  KNOWLEDGE_KNPARTICIPATE
  KNOWLEDGE_KNUPDATE_KNDELETE
  KNOWLEDGE_KNUPDATE_KNMERGE
  KNOWLEDGE_KNUPDATE_KNORGARESTRICT
  KNOWLEDGE_KNUPDATE_KNMANAGEAUTHMEMBERS
  KNOWLEDGE_KNUPLOAD
  KNOWLEDGE_KNASKIMPORT
  KNOWLEDGE_KNGETEXPORT
  KNOWLEDGE_KNGETEXPORT_KNASKEXPORT
  KNOWLEDGE_KNENRICHMENT
  KNOWLEDGE_KNDISSEMINATION
  EXPLORE
  EXPLORE_EXUPDATE
  EXPLORE_EXUPDATE_EXDELETE
  EXPLORE_EXUPDATE_PUBLISH
  INVESTIGATION
  INVESTIGATION_INUPDATE
  INVESTIGATION_INUPDATE_INDELETE
  MODULES
  MODULES_MODMANAGE
  PIRAPI
  PIRAPI_PIRUPDATE
  AUTOMATION
  AUTOMATION_AUTMANAGE
  SETTINGS
  SETTINGS_SETMANAGEXTMHUB
  SETTINGS_SETPARAMETERS
  SETTINGS_SETACCESSES
  SETTINGS_SETMARKINGS
  SETTINGS_SETDISSEMINATION
  SETTINGS_SETLABELS
  SETTINGS_SETVOCABULARIES
  SETTINGS_SETCASETEMPLATES
  SETTINGS_SETSTATUSTEMPLATES
  SETTINGS_SETKILLCHAINPHASES
  SETTINGS_SETCUSTOMIZATION
  SETTINGS_SECURITYACTIVITY
  SETTINGS_FILEINDEXING
  SETTINGS_SUPPORT
  TAXIIAPI
  TAXIIAPI_SETCOLLECTIONS
  INGESTION
  INGESTION_SETINGESTIONS
  CSVMAPPERS
  VIRTUAL_ORGANIZATION_ADMIN
}

### INFO

type DependencyVersion {
  name: String!
  version: String!
}

type AppMemory {
  rss: Float
  heapTotal: Float
  heapUsed: Float
  external: Float
  arrayBuffers: Float
  total_heap_size: Float
  total_heap_size_executable: Float
  total_physical_size: Float
  total_available_size: Float
  used_heap_size: Float
  heap_size_limit: Float
  malloced_memory: Float
  peak_malloced_memory: Float
  does_zap_garbage: Float
}

type AppDebugDistribution {
  label: String!
  value: Int
}

type AppDebugStatistics {
  objects: [AppDebugDistribution]
  relationships: [AppDebugDistribution]
}

type AppInfo {
  version: String! @auth
  memory: AppMemory @auth(for: [SETTINGS_SETPARAMETERS])
  dependencies: [DependencyVersion!]! @auth(for: [SETTINGS_SETPARAMETERS])
  debugStats: AppDebugStatistics @auth(for: [SETTINGS_SETPARAMETERS])
}

### WORKS

input WorkErrorInput {
  error: String
  source: String
}

type WorkMessage {
  timestamp: DateTime
  message: String
  sequence: Int
  source: String
}

type WorkTracking {
  import_expected_number: Int
  import_last_processed: DateTime
  import_processed_number: Int
}

type Work {
  id: ID!
  name: String
  user: Creator
  connector: Connector
  timestamp: DateTime!
  status: State!
  event_source_id: String
  received_time: DateTime
  processed_time: DateTime
  completed_time: DateTime
  completed_number: Int
  messages: [WorkMessage]
  errors: [WorkMessage]
  tracking: WorkTracking
  draft_context: String
}

type WorkEditMutations {
  delete: ID!
  ping: ID!
  reportExpectation(error: WorkErrorInput): ID!
  addExpectations(expectations: Int): ID!
  addDraftContext(draftContext: String): ID!
  toReceived(message: String): ID!
  toProcessed(message: String, inError: Boolean): ID!
}

### PARTIAL: users and other types reachable from Connector / Work

type Representative {
  main: String!
  secondary: String
}

type Creator {
  id: ID!
  name: String!
  entity_type: String!
  representative: Representative!
}

type Metric {
  name: String!
  value: Float
}

type User {
  id: ID!
  standard_id: String!
  entity_type: String!
  parent_types: [String]!
  user_email: String!
  name: String!
  description: String
  firstname: String
  lastname: String
  user_service_account: Boolean
  created_at: DateTime!
  updated_at: DateTime!
}

### CONNECTORS

enum ConnectorType {
  EXTERNAL_IMPORT
  INTERNAL_IMPORT_FILE
  INTERNAL_ENRICHMENT
  INTERNAL_ANALYSIS
  INTERNAL_EXPORT_FILE
  STREAM
}

input RegisterConnectorInput {
  id: ID!
  name: String! @constraint(minLength:2, format: "not-blank")
  type: ConnectorType!
  scope: [String!]
  auto: Boolean
  auto_update: Boolean
  enrichment_resolution: String
  only_contextual: Boolean
  playbook_compatible: Boolean
  listen_callback_uri: String
}

type RabbitMQConnection {
  host: String!
  vhost: String!
  use_ssl: Boolean!
  port: Int!
  user: String!
  pass: String!
}

input ConnectorInfoInput {
  run_and_terminate: Boolean!
  buffering: Boolean!
  queue_threshold: Float!
  queue_messages_size: Float!
  next_run_datetime: DateTime
  last_run_datetime: DateTime
}

type ConnectorInfo {
  run_and_terminate: Boolean!
  buffering: Boolean!
  queue_threshold: Float!
  queue_messages_size: Float!
  next_run_datetime: DateTime
  last_run_datetime: DateTime
}

type ConnectorConfig {
  connection: RabbitMQConnection! @auth(for: [CONNECTORAPI])
  listen: String!
  listen_routing: String!
  listen_exchange: String!
  listen_callback_uri: String
  push: String!
  push_routing: String!
  push_exchange: String!
  dead_letter_routing: String!
}

type ConnectorConfiguration {
  id: ID!
  name: String!
  configuration: String!
}

type ConnectorQueueDetails {
  messages_number: Float!
  messages_size: Float!
}

type ManagerContractConfiguration {
  key: String
  value: String
}

type ManagerContractExcerpt {
  title: String!
  slug: String!
}

enum ConnectorPriorityGroup {
  REALTIME
  DEFAULT
}

type ConnectorHealthMetrics {
  restart_count: Int!
  started_at: DateTime!
  last_update: DateTime!
  is_in_reboot_loop: Boolean!
}

type Connector implements BasicObject & InternalObject {
  id: ID!
  standard_id: String!
  entity_type: String!
  parent_types: [String]!
  metrics:[Metric]
  name: String!
  title: String!
  active: Boolean
  auto: Boolean
  auto_update: Boolean
  enrichment_resolution: String
  only_contextual: Boolean
  playbook_compatible: Boolean
  connector_trigger_filters: String
  connector_type: String
  connector_scope: [String!]
  connector_state: String
  connector_schema: String
  connector_schema_ui: String
  connector_state_reset: Boolean
  connector_state_timestamp: DateTime
  connector_user_id: ID
  connector_user: User
  connector_queue_details: ConnectorQueueDetails!
  connector_info: ConnectorInfo
  connector_priority_group: ConnectorPriorityGroup!
  updated_at: DateTime
  refreshed_at: DateTime
  created_at: DateTime
  config: ConnectorConfig
  works(status: String): [Work]
  is_managed: Boolean
  manager_current_status: String
  manager_requested_status: String
  manager_contract_image: String
  manager_contract_definition: String
  manager_contract_excerpt: ManagerContractExcerpt
  manager_contract_configuration: [ManagerContractConfiguration!]
  manager_connector_logs: [String!]
  manager_contract_hash: String
  manager_health_metrics: ConnectorHealthMetrics
  manager_connector_uptime: Int
  built_in: Boolean
  configurations: [ConnectorConfiguration!]
}

### ROOTS (PARTIAL: only the fields a connector or its worker uses)

type Query {
  about: AppInfo @auth
  connector(id: String!): Connector @auth(for: [MODULES])
  connectors: [Connector!]! @auth(for: [MODULES])
  connectorsForWorker: [Connector] @auth(for: [MODULES])
  work(id: ID!): Work @auth(for: [MODULES])
  isWorkAlive(id: ID!): Boolean @auth(for: [MODULES])
}

type Mutation {
  workAdd(connectorId: String!, friendlyName: String): Work! @auth(for: [CONNECTORAPI, MODULES_MODMANAGE, KNOWLEDGE_KNASKIMPORT, KNOWLEDGE_KNGETEXPORT_KNASKEXPORT])
  workEdit(id: ID!): WorkEditMutations @auth(for: [CONNECTORAPI, MODULES_MODMANAGE])
  workDelete(connectorId: String!): Boolean @auth(for: [CONNECTORAPI, MODULES_MODMANAGE])
  pingConnector(id: ID!, state: String, connectorInfo: ConnectorInfoInput): Connector @auth(for: [CONNECTORAPI])
  registerConnector(input: RegisterConnectorInput): Connector @auth(for: [CONNECTORAPI])
  resetStateConnector(id: ID!): Connector @auth(for: [MODULES_MODMANAGE])
  deleteConnector(id: ID!): ID! @auth(for: [MODULES_MODMANAGE])
  stixBundlePush(connectorId: String!, bundle: String!, work_id: String): Boolean @auth(for: [CONNECTORAPI])
}
"""

PROFILES = ("6.8", "6.5", "6.0")

DEFAULT_VERSIONS = {"6.8": "6.8.10", "6.5": "6.5.10", "6.0": "6.0.10"}


@functools.lru_cache(maxsize=None)
def schema_for(profile="6.8"):
    """Returns the gql.Schema of a platform line ("6.8", "6.5" or "6.0")."""
    if profile not in PROFILES:
        raise ValueError("unknown schema profile %r (known: %s)" % (profile, ", ".join(PROFILES)))
    schema = gql.build_schema(SDL_68)
    if profile == "6.8":
        return schema
    schema = schema.copy()
    reg = schema.types["RegisterConnectorInput"].fields
    conn = schema.types["Connector"].fields
    for name in ("auto_update", "enrichment_resolution"):
        del reg[name]
        del conn[name]
    if profile == "6.0":
        del schema.types["Mutation"].fields["pingConnector"].args["connectorInfo"]
        del schema.types["ConnectorInfoInput"]
        del schema.types["ConnectorInfo"]
        del conn["connector_info"]
        del reg["listen_callback_uri"]
        del schema.types["ConnectorConfig"].fields["listen_callback_uri"]
    return schema.check()
