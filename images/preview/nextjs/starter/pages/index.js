export default function Home() {
  return <main><h1>Drape preview</h1><p>Next.js starter</p></main>;
}
