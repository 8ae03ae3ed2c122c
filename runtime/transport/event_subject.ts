/**
 * Event-plane subjects, scoped as Dynamo scopes them: `namespace.{ns}.{topic}` for a
 * namespace, `namespace.{ns}.component.{comp}.{topic}` for a component. Subscribers filter
 * on subject prefixes, so the scope prefixes are exported too.
 */

/** `namespace.{ns}`: the prefix of every subject in a namespace. */
export function namespaceSubjectPrefix(namespace: string): string {
  return `namespace.${namespace}`;
}

/** `namespace.{ns}.component.{comp}`: the prefix of every subject of a component. */
export function componentSubjectPrefix(namespace: string, component: string): string {
  return `${namespaceSubjectPrefix(namespace)}.component.${component}`;
}

/** `namespace.{ns}.{topic}`, e.g. `namespace.dynamo.kv_metrics`. */
export function namespaceSubject(namespace: string, topic: string): string {
  return `${namespaceSubjectPrefix(namespace)}.${topic}`;
}

/** `namespace.{ns}.component.{comp}.{topic}`, e.g. `namespace.dynamo.component.backend.kv-events`. */
export function componentSubject(namespace: string, component: string, topic: string): string {
  return `${componentSubjectPrefix(namespace, component)}.${topic}`;
}
