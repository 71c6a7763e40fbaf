import { createApp, h } from "vue";

createApp({ render: () => h("h1", "Drape preview (Vue)") }).mount("#app");
